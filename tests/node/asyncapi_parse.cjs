// The official AsyncAPI parser on a document: its diagnostics and what it
// understood, as one JSON line (tests/test_asyncapi_parser.py).
const { Parser } = require('@asyncapi/parser');
const fs = require('fs');
(async () => {
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const errors = diagnostics.filter(d => d.severity === 0);
  const out = {
    errors: errors.map(d => ({ code: d.code, message: d.message, path: d.path.join('/') })),
    warnings: diagnostics.filter(d => d.severity === 1).map(d => ({ code: d.code, message: d.message, path: d.path.join('/') })),
    parsed: document !== undefined,
  };
  if (document) {
    out.channels = document.channels().length;
    out.operations = document.operations().length;
    out.messages = document.components().messages().length;
    const m = document.components().messages().all()[0];
    out.example = { name: m.name(), properties: Object.keys(m.payload().properties() || {}) };
  }
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e.stack || String(e)); process.exit(2); });
