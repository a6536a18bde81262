import type { FastifyError, FastifyInstance } from 'fastify'
import type { ApiErrorBody } from '../shared/topics.js'

/** An error the API answers with its own status and a `{error: {code, message, fields?}}` body. */
export class ApiError extends Error {
  override readonly name = 'ApiError'
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly fields?: Record<string, string>,
  ) {
    super(message)
  }
}

interface AjvIssue {
  instancePath: string
  keyword: string
  message?: string
  params: Record<string, unknown>
}

/** Turns schema errors into `{"tgUsername": "must NOT have more than 64 characters"}`. */
function validationFields(issues: AjvIssue[]): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const issue of issues) {
    const path = issue.instancePath.replace(/^\//, '').replaceAll('/', '.')
    let field = path
    let message = issue.message ?? 'is invalid'
    if (issue.keyword === 'additionalProperties') {
      const name = String(issue.params.additionalProperty)
      field = path ? `${path}.${name}` : name
      message = 'unknown field'
    } else if (issue.keyword === 'required') {
      const name = String(issue.params.missingProperty)
      field = path ? `${path}.${name}` : name
      message = 'is required'
    } else if (issue.keyword === 'pattern' && field.endsWith('photoUrl')) {
      message = 'must be an https URL'
    } else if (issue.keyword === 'pattern' && field.endsWith('userId')) {
      // Not the raw regular expression: people read this under the sign-in field.
      message = 'must be a whole number from 1 (digits only, at most 20)'
    } else if (issue.keyword === 'pattern' && field.endsWith('tgUsername')) {
      message = 'must contain a visible character and no control characters'
    }
    fields[field || '(body)'] ??= message
  }
  return fields
}

function body(code: string, message: string, fields?: Record<string, string>): ApiErrorBody {
  return fields ? { error: { code, message, fields } } : { error: { code, message } }
}

/** Every error, including Fastify's own (bad JSON, wrong content type), answers with a JSON body. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    if (error instanceof ApiError) {
      return reply.status(error.statusCode).send(body(error.code, error.message, error.fields))
    }
    if (error.validation) {
      const where = error.validationContext ?? 'request'
      return reply
        .status(400)
        .send(body('VALIDATION_FAILED', `invalid ${where}`, validationFields(error.validation as AjvIssue[])))
    }
    switch (error.code) {
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return reply.status(400).send(body('MALFORMED_JSON', 'the body is not valid JSON'))
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply.status(415).send(body('UNSUPPORTED_MEDIA_TYPE', 'send application/json'))
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.status(413).send(body('BODY_TOO_LARGE', 'the body is too large'))
    }
    const status = error.statusCode ?? 500
    // secure-json-parse refuses prototype-poisoning keys with a plain SyntaxError.
    if (error instanceof SyntaxError && /prototype property/.test(error.message)) {
      return reply.status(400).send(body('MALFORMED_JSON', 'the body must not contain "__proto__" or "constructor.prototype"'))
    }
    if (status >= 400 && status < 500) {
      // A SyntaxError from the JSON parser carries 400 but no FST_ERR code on some paths.
      const code = error instanceof SyntaxError ? 'MALFORMED_JSON' : 'BAD_REQUEST'
      return reply.status(status).send(body(code, error.message))
    }
    request.log.error({ err: error }, 'request failed')
    return reply.status(500).send(body('INTERNAL', 'internal error'))
  })
}
