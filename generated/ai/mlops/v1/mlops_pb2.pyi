import datetime

from ai.options.v1 import options_pb2 as _options_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeploymentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPLOYMENT_STATE_UNSPECIFIED: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_PENDING: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_DEPLOYED: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_FAILED: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_ROLLED_BACK: _ClassVar[DeploymentState]
DEPLOYMENT_STATE_UNSPECIFIED: DeploymentState
DEPLOYMENT_STATE_PENDING: DeploymentState
DEPLOYMENT_STATE_DEPLOYED: DeploymentState
DEPLOYMENT_STATE_FAILED: DeploymentState
DEPLOYMENT_STATE_ROLLED_BACK: DeploymentState

class TrainingJob(_message.Message):
    __slots__ = ("job_id", "model_type", "training_data", "parameters")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_DATA_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    model_type: str
    training_data: str
    parameters: _struct_pb2.Struct
    def __init__(self, job_id: _Optional[str] = ..., model_type: _Optional[str] = ..., training_data: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class PredictionRequest(_message.Message):
    __slots__ = ("prediction_id", "model_id", "features")
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    prediction_id: str
    model_id: str
    features: _struct_pb2.Struct
    def __init__(self, prediction_id: _Optional[str] = ..., model_id: _Optional[str] = ..., features: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class PredictionResult(_message.Message):
    __slots__ = ("prediction_id", "model_id", "output", "confidence", "latency")
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    prediction_id: str
    model_id: str
    output: _struct_pb2.Struct
    confidence: float
    latency: _duration_pb2.Duration
    def __init__(self, prediction_id: _Optional[str] = ..., model_id: _Optional[str] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., confidence: _Optional[float] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ModelDeployment(_message.Message):
    __slots__ = ("deployment_id", "model_id", "model_version", "environment", "state")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    model_id: str
    model_version: str
    environment: str
    state: DeploymentState
    def __init__(self, deployment_id: _Optional[str] = ..., model_id: _Optional[str] = ..., model_version: _Optional[str] = ..., environment: _Optional[str] = ..., state: _Optional[_Union[DeploymentState, str]] = ...) -> None: ...
