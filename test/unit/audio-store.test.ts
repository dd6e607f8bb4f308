import t, { type Test } from 'tap'
import { AudioStore } from '../../src/core/audio-store.ts'

// AudioStore against a plain reference: one Float32Array of everything appended, quantised as
// the store keeps it (16-bit: round(x * 32768), clamped, read back as v / 32768).
const RATE = 16000

// A seeded generator, so a failure reproduces.
function random (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function quantise (x: number): number {
  if (Number.isNaN(x)) return 0
  return Math.max(-32768, Math.min(32767, Math.round(x * 32768))) / 32768
}

// What slice(from, to, length) must return: [from, to) of the reference, zeros where the store
// holds nothing (before start, from end), zero-padded to `length`.
function expected (reference: Float32Array, start: number, end: number, from: number, to: number, length = to - from): Float32Array {
  const out = new Float32Array(Math.max(0, Math.min(to, end) - from, length))
  for (let i = Math.max(from, start); i < Math.min(to, end); i++) out[i - from] = reference[i] as number
  return out
}

// The block size, as the store shows it: what one sample allocates.
function blockSamples (): number {
  const store = new AudioStore()
  store.append(new Float32Array(1))
  return store.retainedSamples
}

function firstDifference (a: Float32Array, b: Float32Array): string {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `at ${i}: ${a[i]} vs ${b[i]}`
  return 'none'
}

// Appends chunks of random sizes (0, small, around a block, several blocks) of random samples,
// some beyond full scale, some exact 16-bit values; returns the quantised reference.
function fill (store: AudioStore, next: () => number, total: number, block: number): Float32Array {
  const reference = new Float32Array(total)
  let end = 0
  while (end < total) {
    const pick = next()
    const size = pick < 0.1 ? 0 : pick < 0.5 ? Math.floor(next() * 700) : pick < 0.8 ? block - 2 + Math.floor(next() * 5) : Math.floor(next() * 3.5 * block)
    const chunk = new Float32Array(Math.min(size, total - end))
    for (let i = 0; i < chunk.length; i++) {
      const kind = next()
      chunk[i] = kind < 0.3 ? Math.round((next() * 2 - 1) * 32768) / 32768 : (next() * 2 - 1) * 1.2
    }
    store.append(chunk)
    chunk.forEach((x, i) => { reference[end + i] = quantise(x) })
    end += chunk.length
    if (store.end !== end) throw new Error(`end ${store.end} after a chunk of ${chunk.length}, expected ${end}`)
  }
  return reference
}

function checkSlices (t: Test, store: AudioStore, reference: Float32Array, next: () => number, count: number, block: number): void {
  let bad = 0
  for (let n = 0; n < count; n++) {
    const end = store.end
    const from = Math.floor(next() * (end + 4 * block)) - 2 * block
    const to = from + Math.floor(next() * 3 * block)
    const padded = next() < 0.3
    const length = padded ? to - from + Math.floor(next() * block) : undefined
    const got = store.slice(from, to, length)
    const want = expected(reference, store.start, end, from, to, length)
    const diff = firstDifference(got, want)
    if (diff !== 'none') {
      if (bad++ < 5) t.fail(`slice(${from}, ${to}, ${length}) with start ${store.start}, end ${end}: ${diff}`)
    }
    if (got.byteOffset !== 0 || got.buffer.byteLength !== got.byteLength) {
      if (bad++ < 5) t.fail(`slice(${from}, ${to}, ${length}) does not own its buffer`)
    }
    // read() into a reused array full of leftovers writes every element: the same samples.
    const reused = new Float32Array(want.length + 7).fill(NaN).subarray(3, 3 + want.length)
    const readDiff = firstDifference(store.read(from, to, reused), want)
    if (readDiff !== 'none') {
      if (bad++ < 5) t.fail(`read(${from}, ${to}) into ${want.length} with start ${store.start}, end ${end}: ${readDiff}`)
    }
  }
  t.equal(bad, 0, `${count} random slices (and reads into a reused array) equal the reference`)
}

t.test('random appends and slices equal a plain reference', async (t) => {
  const block = blockSamples()
  t.ok(block >= RATE / 4 && block <= RATE, `a block is 0.25-1 s (${block} samples)`)
  for (const seed of [1, 2, 3]) {
    await t.test(`seed ${seed}`, async (t) => {
      const next = random(seed)
      const store = new AudioStore()
      const reference = fill(store, next, 12 * block + 123, block)
      t.equal(store.start, 0)
      checkSlices(t, store, reference, next, 2000, block)
      // Block boundaries exactly.
      for (let k = 0; k * block <= store.end; k++) {
        for (const [from, to] of [[k * block - 1, k * block + 1], [k * block, (k + 1) * block], [k * block - 3, (k + 2) * block + 3]] as const) {
          t.same(store.slice(from, to), expected(reference, 0, store.end, from, to), `slice(${from}, ${to})`, { diagnostic: false })
        }
      }
    })
  }
})

t.test('slice edge cases', async (t) => {
  const store = new AudioStore()
  t.same(store.slice(0, 10), new Float32Array(10), 'empty store: zeros')
  t.same(store.slice(0, 0), new Float32Array(0))
  t.same(store.slice(0, 0, 4), new Float32Array(4), 'padding only')
  store.append(Float32Array.from([0.5, -0.5, 0.25]))
  t.same(store.slice(0, 3), Float32Array.from([0.5, -0.5, 0.25]))
  t.same(store.slice(-2, 2), Float32Array.from([0, 0, 0.5, -0.5]), 'before start: zeros, in place')
  t.same(store.slice(1, 6), Float32Array.from([-0.5, 0.25, 0, 0, 0]), 'past the end: zeros')
  t.same(store.slice(1, 2, 4), Float32Array.from([-0.5, 0, 0, 0]), 'zero-padded to length')
  t.same(store.slice(5, 8), new Float32Array(3), 'wholly past the end')
  t.same(store.slice(2, 1), new Float32Array(0), 'an empty range')

  const a = store.slice(0, 3)
  a[0] = 9
  t.equal(store.slice(0, 1)[0], 0.5, 'a slice is a copy')
  t.not(store.slice(0, 3).buffer, store.slice(0, 3).buffer, 'each slice has its own buffer')
})

t.test('16-bit storage: exact for 16-bit input, clipped beyond full scale', async (t) => {
  const store = new AudioStore()
  const ints = [-32768, -32767, -1, 0, 1, 12345, 32767]
  store.append(Float32Array.from(ints, (v) => v / 32768))
  t.same(Array.from(store.slice(0, ints.length)), ints.map((v) => v / 32768), '16-bit PCM round-trips exactly')
  store.append(Float32Array.from([1, 1.5, -1, -1.5, Number.NaN, 1 / 65536 + 1e-7, 0.3]))
  t.same(Array.from(store.slice(ints.length, ints.length + 7)), [32767 / 32768, 32767 / 32768, -1, -1, 0, 1 / 32768, Math.round(0.3 * 32768) / 32768])
  const error = Math.abs((store.slice(ints.length + 6, ints.length + 7)[0] as number) - 0.3)
  t.ok(error <= 0.5 / 32768, `other values within half a step (${error})`)
})

t.test('discardBefore frees whole blocks; kept ranges stay right', async (t) => {
  const block = blockSamples()
  const next = random(7)
  const store = new AudioStore()
  const reference = fill(store, next, 20 * block + 77, block)
  let point = -5
  while (point < store.end + block) {
    store.discardBefore(point)
    const start = store.start
    const reachable = Math.max(0, Math.min(point, store.end))
    t.ok(start <= reachable && start > reachable - block, `discardBefore(${point}): start ${start} within a block before it`, { diagnostic: false })
    t.equal(store.retainedSamples, Math.ceil(store.end / block) * block - start, 'only the blocks from start on are held', { diagnostic: false })
    t.same(store.slice(reachable, store.end), reference.slice(reachable, store.end), 'the kept range', { diagnostic: false })
    t.same(store.slice(start - 10, start + 10), expected(reference, start, store.end, start - 10, start + 10), 'zeros before start', { diagnostic: false })
    point += Math.floor(next() * 1.5 * block)
  }
  t.equal(store.start, Math.floor(store.end / block) * block, 'discarding past the end keeps start at most at the end')
  t.ok(store.start <= store.end)

  // Appending goes on after everything was discarded, with the blocks still aligned.
  const more = new Float32Array(3 * block + 5).map((_, i) => ((i % 200) - 100) / 128)
  const from = store.end
  store.append(more)
  t.same(store.slice(from, store.end), more, 'appended after a full discard')
  t.same(store.slice(from - 3, from + 2), expected(Float32Array.from([...reference, ...more]), store.start, store.end, from - 3, from + 2))
  store.discardBefore(store.end) // the end inside a block: that block stays
  t.ok(store.retainedSamples > 0 && store.start <= store.end)
  t.equal(store.slice(store.end - 1, store.end)[0], more[more.length - 1], 'the last sample is still held')

  // Random slices after discarding.
  const other = new AudioStore()
  const ref = fill(other, next, 15 * block, block)
  other.discardBefore(6 * block + 17)
  checkSlices(t, other, ref, next, 1000, block)
  t.equal(other.start, 6 * block)
})

t.test('memory: 30 s appended, the first 29 s discarded', async (t) => {
  const block = blockSamples()
  const store = new AudioStore()
  const frame = new Float32Array(RATE * 20 / 1000).fill(0.1)
  for (let i = 0; i < 30 * 50; i++) store.append(frame)
  t.equal(store.end, 30 * RATE)
  t.ok(store.retainedSamples < 31 * RATE, `30 s held in ${store.retainedSamples / block} blocks`)
  store.discardBefore(29 * RATE)
  t.ok(store.retainedSamples >= RATE, 'the last second is held')
  t.ok(store.retainedSamples < RATE + block, `fewer than 1 s + one block kept (${store.retainedSamples} samples, ${store.retainedSamples / block} blocks)`)
  t.ok(store.retainedSamples / block <= Math.ceil(RATE / block) + 1, 'in at most the blocks of 1 s plus one')
  t.same(store.slice(29 * RATE, 30 * RATE), new Float32Array(RATE).fill(quantise(0.1)))
})
