"""The protocol's Python modules come from the shipped .proto at import: nothing generated lies in the
source tree, a source checkout compiles its proto/ copy, an installed wheel the copy next to the
package, and the messages are the typed ones the .proto declares (no opaque payload fields)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("grpc")

from dexloop.async_inference._generated import PROTO_NAME, pb2, pb2_grpc, proto_path

REPO = Path(__file__).resolve().parents[2]
CANONICAL = REPO / "proto" / "dexloop" / PROTO_NAME


def test_a_checkout_compiles_its_canonical_proto():
    assert proto_path() == CANONICAL
    assert pb2.__name__ == "dexloop.async_inference.async_inference_pb2"
    assert pb2.DESCRIPTOR.package == "dexloop.async_inference"
    assert hasattr(pb2_grpc, "AsyncInferenceStub")


def test_no_generated_code_in_the_source_tree():
    generated = [*(REPO / "python").rglob("*_pb2*.py"), *(REPO / "proto").rglob("*.py")]
    assert generated == []
    # The modules were loaded from a temporary folder, gone since.
    assert not Path(pb2.__file__).exists() and not Path(pb2.__file__).is_relative_to(REPO)


def test_an_installed_package_finds_the_copy_beside_it(tmp_path):
    package = tmp_path / "site-packages" / "dexloop" / "async_inference"
    package.mkdir(parents=True)
    with pytest.raises(ImportError, match="installation is incomplete"):
        proto_path(package)
    shutil.copy(CANONICAL, package / PROTO_NAME)
    assert proto_path(package) == package / PROTO_NAME


def test_messages_are_typed():
    # Every field of every message has a declared meaning: no bytes field other than array data.
    bytes_fields = {
        f"{message.name}.{field.name}"
        for message in pb2.DESCRIPTOR.message_types_by_name.values()
        for field in message.fields
        if field.type == field.TYPE_BYTES
    }
    assert bytes_fields == {"FloatTensor.data", "Image.data"}
    service = pb2.DESCRIPTOR.services_by_name["AsyncInference"]
    (method,) = service.methods
    assert (method.name, method.client_streaming, method.server_streaming) == ("Session", True, True)
