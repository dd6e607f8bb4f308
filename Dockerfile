# The server as `npm start` runs it: `node src/server.ts` on Node 24, which strips the types
# itself (no build step). Build: docker build -t streamer .   Run: docker run --rm -p 8080:8080 streamer
FROM node:24-slim

# tini as PID 1: it passes SIGTERM on to the server (which drains its streams, see README
# "Shutdown") and reaps zombies, so the image behaves without `docker run --init`.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, so this layer is reused while only the source changes. `.npmrc` tells
# onnxruntime-node's install script to download nothing (onnxruntime-node-install=skip), and
# the project's postinstall (scripts/prune-onnxruntime.mjs) deletes the onnxruntime binaries of
# other platforms: both must be here before `npm ci`.
COPY package.json package-lock.json .npmrc ./
COPY scripts/prune-onnxruntime.mjs scripts/
RUN npm ci --omit=dev --no-audit --no-fund \
  && npm cache clean --force

# The rest of the source (.dockerignore keeps node_modules, tests and docs out). Owned by root
# and only read by the server.
COPY . .

USER node
EXPOSE 8080

# Readiness: 503 while the workers warm up and from the moment shutdown begins. Node's own
# fetch: the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/api/v1/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# `docker stop` sends this; the server drains for shutdown.drain_seconds (20 s by default) and
# exits. Docker's own stop timeout is 10 s: give it more (docker stop -t 30, --stop-timeout 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "src/server.ts"]
