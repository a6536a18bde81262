import { describe } from 'vitest'
import { sqliteStorage } from './utils/app.js'
import { describeApi } from './utils/api-suite.js'

describe('API on SQLite', () => describeApi(sqliteStorage))
