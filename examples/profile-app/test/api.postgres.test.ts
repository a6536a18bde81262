import { describe } from 'vitest'
import { postgresStorage } from './utils/app.js'
import { describeApi } from './utils/api-suite.js'

// PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test), in a schema of
// its own that is dropped afterwards.
describe('API on PostgreSQL', () => describeApi(postgresStorage))
