#!/usr/bin/env python3
# Derives src/audio/models/silero_vad_v5_sequence.onnx from the shipped Silero VAD v5 model
# (src/audio/models/silero_vad_v5.onnx, unchanged from upstream), for SileroVad
# (src/audio/silero-vad.ts). Run it only when the upstream model changes; the derived file is
# committed, and test/unit/silero-vad.test.ts checks that it gives the upstream model's
# probabilities and states on real speech.
#
# Why: upstream's graph takes one 32 ms frame per stream per run ([B, 576] and the LSTM state),
# so one stream's frames, which the LSTM makes sequential, cost one onnxruntime run each: ~120 us
# per frame on this project's 2-core VM, most of it per-run and per-node overhead. Only the LSTM
# is sequential: the STFT and the four convolutions see one frame (with its 64 samples of
# context) at a time. The derived graph takes [B, T, 576] (T frames per stream), runs the
# encoder on all B*T frames as one batch, and the LSTM over the T steps inside one LSTM node,
# starting from the given state. One stream's 64 frames: ~36 us per frame (see bench/README.md).
#
# What it keeps of upstream: the 16 kHz branch only (the `If` on `sr`, whose other branch is
# 8 kHz; the server always feeds 16 kHz), with the same weights. PyTorch's LSTMCell gate order
# (i, f, g, o) becomes ONNX's (i, o, f, c), as upstream's own export does inside its graph. The
# decoder's 1x1 convolution becomes a MatMul over the hidden states. Inputs: `input`
# [batch, steps, 576] and `state` [2, batch, 128]; outputs: `output` [batch, steps] (speech
# probability per frame) and `stateN` [2, batch, 128] (the state after the last step).
#
# Needs the `onnx` Python package (Debian: `apt-get install python3-onnx`, for /usr/bin/python3).
# Usage: /usr/bin/python3 scripts/derive-silero-sequence.py [upstream.onnx] [derived.onnx]
# test/unit/silero-derivation.test.ts runs it and checks the output is the committed file.
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SRC = sys.argv[1] if len(sys.argv) > 1 else 'src/audio/models/silero_vad_v5.onnx'
DST = sys.argv[2] if len(sys.argv) > 2 else 'src/audio/models/silero_vad_v5_sequence.onnx'
PREFIX = 'If_0_then_branch__Inline_0__'

model = onnx.load(SRC)
nodes = model.graph.node
assert [n.op_type for n in nodes[:3]] == ['Constant', 'Equal', 'If'], 'not the Silero VAD v5 graph this script knows'
assert int(numpy_helper.to_array(nodes[0].attribute[0].t)) == 16000, 'the If is not on sr == 16000'
branch = next(a.g for a in nodes[2].attribute if a.name == 'then_branch')
weights = {}
for node in branch.node:
    if node.op_type == 'Constant' and node.output[0].startswith(PREFIX):
        weights[node.output[0][len(PREFIX):]] = numpy_helper.to_array(node.attribute[0].t)
# The 16 kHz STFT: 256-sample window, hop 128 (the 8 kHz branch has 128 and 64).
assert weights['stft.forward_basis_buffer'].shape == (258, 1, 256)
assert weights['decoder.rnn.weight_ih'].shape == (512, 128)


def onnx_gates(x):
    """PyTorch's LSTM gate blocks (i, f, g, o) in ONNX's order (i, o, f, c)."""
    return np.concatenate([x[0:128], x[384:512], x[128:384]], axis=0)


def i64(*values):
    return np.array(values, dtype=np.int64)


initializers = {
    'stft_basis': weights['stft.forward_basis_buffer'],
    'lstm_w': onnx_gates(weights['decoder.rnn.weight_ih'])[None],
    'lstm_r': onnx_gates(weights['decoder.rnn.weight_hh'])[None],
    'lstm_b': np.concatenate([onnx_gates(weights['decoder.rnn.bias_ih']), onnx_gates(weights['decoder.rnn.bias_hh'])])[None],
    'decoder_w': np.ascontiguousarray(weights['decoder.decoder.2.weight'].reshape(1, 128).T),
    'decoder_b': weights['decoder.decoder.2.bias'],
    # Upstream pads each frame's end with a 64-sample reflection before the STFT.
    'reflect_pads': i64(0, 0, 0, 64),
    'frames_shape': i64(-1, 576),
    'features': i64(128),
    'i0': i64(0), 'i1': i64(1), 'i2': i64(2), 'i129': i64(129), 'end': i64(1 << 62),
}
for i in range(4):
    initializers[f'encoder{i}_w'] = weights[f'encoder.{i}.reparam_conv.weight']
    initializers[f'encoder{i}_b'] = weights[f'encoder.{i}.reparam_conv.bias']

make = helper.make_node
graph_nodes = [
    make('Shape', ['input'], ['input_shape']),
    make('Slice', ['input_shape', 'i0', 'i2'], ['batch_steps']),
    make('Reshape', ['input', 'frames_shape'], ['frames']),                      # [B*T, 576]
    make('Pad', ['frames', 'reflect_pads'], ['padded'], mode='reflect'),        # [B*T, 640]
    make('Unsqueeze', ['padded', 'i1'], ['padded_1ch']),                         # [B*T, 1, 640]
    make('Conv', ['padded_1ch', 'stft_basis'], ['stft'], kernel_shape=[256], strides=[128], pads=[0, 0], dilations=[1], group=1),
    make('Slice', ['stft', 'i0', 'i129', 'i1'], ['real']),
    make('Slice', ['stft', 'i129', 'end', 'i1'], ['imag']),
    make('Mul', ['real', 'real'], ['real2']),
    make('Mul', ['imag', 'imag'], ['imag2']),
    make('Add', ['real2', 'imag2'], ['power']),
    make('Sqrt', ['power'], ['magnitude']),                                      # [B*T, 129, 4]
]
x = 'magnitude'
for i, stride in enumerate([1, 2, 2, 1]):
    graph_nodes += [
        make('Conv', [x, f'encoder{i}_w', f'encoder{i}_b'], [f'encoder{i}'], kernel_shape=[3], strides=[stride], pads=[1, 1], dilations=[1], group=1),
        make('Relu', [f'encoder{i}'], [f'encoder{i}_relu']),
    ]
    x = f'encoder{i}_relu'                                                        # last: [B*T, 128, 1]
graph_nodes += [
    make('Concat', ['batch_steps', 'features'], ['feature_shape'], axis=0),
    make('Reshape', [x, 'feature_shape'], ['features_bt']),                      # [B, T, 128]
    make('Transpose', ['features_bt'], ['features_tb'], perm=[1, 0, 2]),         # [T, B, 128]
    make('Slice', ['state', 'i0', 'i1', 'i0'], ['h0']),
    make('Slice', ['state', 'i1', 'i2', 'i0'], ['c0']),
    make('LSTM', ['features_tb', 'lstm_w', 'lstm_r', 'lstm_b', '', 'h0', 'c0'], ['hidden', 'h_last', 'c_last'], hidden_size=128),
    make('Concat', ['h_last', 'c_last'], ['stateN'], axis=0),                    # [2, B, 128]
    make('Squeeze', ['hidden', 'i1'], ['hidden_tb']),                            # [T, B, 128]
    make('Relu', ['hidden_tb'], ['hidden_relu']),
    make('MatMul', ['hidden_relu', 'decoder_w'], ['logit_unbiased']),            # [T, B, 1]
    make('Add', ['logit_unbiased', 'decoder_b'], ['logit']),
    make('Sigmoid', ['logit'], ['probability_tb']),
    make('Transpose', ['probability_tb'], ['probability_bt'], perm=[1, 0, 2]),   # [B, T, 1]
    make('Reshape', ['probability_bt', 'batch_steps'], ['output']),             # [B, T]
]
graph = helper.make_graph(
    graph_nodes, 'silero_vad_v5_16k_sequence',
    [helper.make_tensor_value_info('input', TensorProto.FLOAT, ['batch', 'steps', 576]),
     helper.make_tensor_value_info('state', TensorProto.FLOAT, [2, 'batch', 128])],
    [helper.make_tensor_value_info('output', TensorProto.FLOAT, ['batch', 'steps']),
     helper.make_tensor_value_info('stateN', TensorProto.FLOAT, [2, 'batch', 128])],
    [numpy_helper.from_array(value, name) for name, value in initializers.items()])
derived = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 16)], producer_name='streamer scripts/derive-silero-sequence.py')
derived.ir_version = model.ir_version
onnx.checker.check_model(derived)
onnx.save(derived, DST)
print(f'{SRC} -> {DST}')
