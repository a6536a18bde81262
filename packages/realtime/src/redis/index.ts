/**
 * `@app/realtime/redis`: the Redis bus, for many server instances sharing one Redis.
 * ioredis is a peer dependency: install it beside this package.
 */
export { RedisBus, REDIS_BUS_CONNECTION_OPTIONS, type RedisBusOptions } from './bus.js'
