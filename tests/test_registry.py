"""server/registry.py: TF Serving's ClassRegistry::CreateFromAny, its steps and messages."""
import pytest
from google.protobuf import any_pb2, wrappers_pb2

from server.registry import RegistryError, create_from_any


def packed(message) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(message)
    return a


def test_a_registered_type_is_made_by_its_factory_from_the_unpacked_config():
    made = create_from_any(packed(wrappers_pb2.Int32Value(value=7)),
                           {"google.protobuf.Int32Value": lambda config: ("made", config.value)})
    assert made == ("made", 7)


@pytest.mark.parametrize("any_config, code, message", [
    (any_pb2.Any(), "INVALID_ARGUMENT", "Supplied config's type_url could not be parsed: "),
    (any_pb2.Any(type_url="type.googleapis.com/"), "INVALID_ARGUMENT",
     "Supplied config's type_url could not be parsed: type.googleapis.com/"),
    (any_pb2.Any(type_url="type.googleapis.com/no.Such"), "INTERNAL",
     "Unable to find compiled-in proto descriptor of type no.Such"),
    (any_pb2.Any(type_url="type.googleapis.com/google.protobuf.Int32Value", value=b"\xff"), "INVALID_ARGUMENT",
     'Malformed content of Any: type_url: "type.googleapis.com/google.protobuf.Int32Value"\nvalue: "\\377"\n'),
    (packed(wrappers_pb2.StringValue(value="x")), "INVALID_ARGUMENT",
     'Couldn\'t find factory for config proto message type google.protobuf.StringValue\nconfig=value: "x"\n'),
])
def test_what_tf_serving_refuses(any_config, code, message):
    with pytest.raises(RegistryError) as e:
        create_from_any(any_config, {"google.protobuf.Int32Value": lambda config: config})
    assert (e.value.code, e.value.message) == (code, message)
