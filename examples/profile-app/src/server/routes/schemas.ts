/** JSON schemas of the request bodies and parameters; unknown fields are rejected, not dropped. */

export const userIdSchema = { type: 'string', pattern: '^[1-9][0-9]{0,19}$' } as const

export const tgUsernameSchema = {
  type: 'string',
  minLength: 1,
  maxLength: 64,
  pattern: '^(?=.*\\S)[^\\u0000-\\u001F\\u007F]+$',
} as const

/** `null` removes the photo; `isHttpsUrl` checks a string further in the handler. */
export const photoUrlSchema = { type: ['string', 'null'], maxLength: 2048, pattern: '^https://\\S+$' } as const

export const userParamsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['userId'],
  properties: { userId: userIdSchema },
} as const

export const userChangesSchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: { tgUsername: tgUsernameSchema, photoUrl: photoUrlSchema },
} as const

export const batchSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['items'],
  properties: {
    items: {
      type: 'array',
      minItems: 1,
      maxItems: 100,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['userId'],
        minProperties: 2,
        properties: { userId: userIdSchema, tgUsername: tgUsernameSchema, photoUrl: photoUrlSchema },
      },
    },
  },
} as const

export const pageQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'string', pattern: '^[0-9]{1,3}$' },
    offset: { type: 'string', pattern: '^[0-9]{1,9}$' },
  },
} as const

export const telegramLoginSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['initData'],
  properties: { initData: { type: 'string', minLength: 1, maxLength: 8192 } },
} as const

export const devLoginSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['userId'],
  properties: { userId: userIdSchema, tgUsername: tgUsernameSchema },
} as const
