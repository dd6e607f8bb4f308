#!/usr/bin/env node
// The package's bin: Node 24 runs the TypeScript entry directly (type stripping, no build).
import '../src/cli/streamer-client.ts'
