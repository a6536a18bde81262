import { defineConfig } from 'tsup'

/** One entry per subpath export; keep in sync with "exports" in package.json. */
export const entry = {
  index: 'src/index.ts',
  server: 'src/server/index.ts',
  client: 'src/client/index.ts',
  react: 'src/react/index.ts',
  fastify: 'src/fastify/index.ts',
  redis: 'src/redis/index.ts',
  outbox: 'src/outbox/index.ts',
}

export default defineConfig({
  entry,
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  splitting: true,
  // esbuild tree-shakes the bundle already; tsup's extra rollup pass (treeshake: true) only re-emitted the
  // same code and warned that dist/fastify.cjs has named and default exports together (it is meant to:
  // `require(...).default` and `require(...).realtimePlugin` are the same plugin).
  treeshake: false,
  target: 'es2022',
  external: ['ws', 'ioredis', 'react', 'fastify', 'fastify-plugin', 'prom-client', 'reconnecting-websocket'],
})
