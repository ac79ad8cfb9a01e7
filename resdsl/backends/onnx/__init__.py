"""The ONNX backend: an ONNX ModelProto built from the IR (export)."""
