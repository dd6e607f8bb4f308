// A minimal ONNX model written by hand (protobuf wire format): one Identity node from a float
// input `x` to an output `y`. Enough for onnxruntime to load, and not Silero: tests use it to
// check that a model without Silero's inputs is refused.

function varint (value: number): number[] {
  const bytes: number[] = []
  let v = value
  while (v > 0x7f) {
    bytes.push((v & 0x7f) | 0x80)
    v = Math.floor(v / 128)
  }
  bytes.push(v)
  return bytes
}

const int = (field: number, value: number): number[] => [...varint(field << 3), ...varint(value)]
const bytesField = (field: number, payload: number[]): number[] => [...varint((field << 3) | 2), ...varint(payload.length), ...payload]
const text = (field: number, value: string): number[] => bytesField(field, [...Buffer.from(value, 'utf8')])

// ValueInfoProto { name, type: TypeProto { tensor_type { elem_type: FLOAT, shape { dim { dim_value: 1 } } } } }
function floatTensor (name: string): number[] {
  const shape = bytesField(2, bytesField(1, int(1, 1)))
  const tensorType = bytesField(1, [...int(1, 1), ...shape])
  return [...text(1, name), ...bytesField(2, tensorType)]
}

export function identityModel (): Uint8Array {
  const node = [...text(1, 'x'), ...text(2, 'y'), ...text(3, 'identity'), ...text(4, 'Identity')]
  const graph = [...bytesField(1, node), ...text(2, 'identity'), ...bytesField(11, floatTensor('x')), ...bytesField(12, floatTensor('y'))]
  // ModelProto { ir_version: 8, graph, opset_import { version: 13 } }
  return Uint8Array.from([...int(1, 8), ...bytesField(7, graph), ...bytesField(8, int(2, 13))])
}
