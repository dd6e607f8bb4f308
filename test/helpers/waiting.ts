// Test clients' shared waiting: for a condition, or for a request to give the answer awaited.
// Never a timed assertion: a wait that passes costs only the time it takes.

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// How long a test waits for something that normally takes well under a second. Generous, because
// a loaded CI machine can be many times slower than a laptop: a wait that passes costs only the
// time it takes, and one that fails is a real failure, not a slow machine.
export const PATIENCE_MS = 20000

// Polls until `condition` holds or `timeoutMs` passes; returns whether it holds.
export async function until (condition: () => boolean | Promise<boolean>, timeoutMs = PATIENCE_MS): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (true) {
    if (await condition()) return true // asked once per round: a condition may be a request
    if (Date.now() >= deadline) return false
    await sleep(20)
  }
}

// Calls `attempt` again (after `pauseMs`) while `again` says its answer is not the one awaited
// (a 503 during a failover, say), until `timeoutMs` passes; returns the last answer.
export async function retryWhile<T> (attempt: () => Promise<T>, again: (answer: T) => boolean, pauseMs = 100, timeoutMs = PATIENCE_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let answer = await attempt()
  while (again(answer) && Date.now() < deadline) {
    await sleep(pauseMs)
    answer = await attempt()
  }
  return answer
}

// As until, for a wait that must succeed: throws, naming what did not happen.
export async function waitUntil (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = PATIENCE_MS): Promise<void> {
  if (!(await until(condition, timeoutMs))) throw new Error(`timed out waiting until ${what}`)
}

// Whether the server at `base` answers its readiness route with 200 (false while it is not
// listening yet): for a server started as a process of its own (tests and the
// benchmarks' server, bench/server-process.ts).
export async function answersReady (base: string): Promise<boolean> {
  try {
    const response = await fetch(`${base}/api/v1/ready`)
    await response.arrayBuffer()
    return response.status === 200
  } catch {
    return false
  }
}
