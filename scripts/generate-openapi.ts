// Writes openapi.yaml (OpenAPI 3.1): the app is built exactly as `npm start` builds it, but
// never listens, and @fastify/swagger describes its routes from their schemas.
// `npm run openapi` regenerates it; test/unit/openapi.test.ts fails when the committed file
// differs from what this script writes.
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
import { renderOpenApiYaml } from '../plugins/openapi.ts'

export const OPENAPI_PATH = fileURLToPath(new URL('../openapi.yaml', import.meta.url))

// Defaults only (no config file, no environment), so the document does not depend on the
// machine; a model with no delay so the workers warm at once (the model is not part of the API).
export async function generateOpenApi (): Promise<string> {
  const { config, configDir } = loadConfig({
    file: null,
    env: {},
    overrides: { model: { threads: 1, options: { delay: 0, constant_factor: 0, jitter: 0, failure_rate: 0, panic_rate: 0, warmup_penalty: 1 } } }
  })
  const app = await buildApp({ config, configDir })
  try {
    await app.ready()
    return renderOpenApiYaml(app.swagger())
  } finally {
    await app.close()
  }
}

if (import.meta.main) {
  writeFileSync(OPENAPI_PATH, await generateOpenApi())
  console.log(`wrote ${OPENAPI_PATH}`)
}
