import { describe, expect, it } from 'vitest'
import { isValidTopic, parseClientFrame, parseServerFrame } from '../src/protocol.js'

describe('parseClientFrame', () => {
  it.each([
    ['not json', 'BAD_REQUEST'],
    ['[1,2]', 'BAD_REQUEST'],
    ['42', 'BAD_REQUEST'],
    ['null', 'BAD_REQUEST'],
    ['"hello"', 'BAD_REQUEST'],
    ['{}', 'BAD_REQUEST'],
    ['{"type":7}', 'BAD_REQUEST'],
    ['{"type":"nope"}', 'UNKNOWN_TYPE'],
    ['{"type":"__proto__"}', 'UNKNOWN_TYPE'],
    ['{"type":"hello"}', 'BAD_REQUEST'],
    ['{"type":"hello","v":2}', 'UNSUPPORTED_VERSION'],
    ['{"type":"subscribe"}', 'BAD_REQUEST'],
    ['{"type":"subscribe","topic":""}', 'INVALID_TOPIC'],
    ['{"type":"subscribe","topic":"a b"}', 'INVALID_TOPIC'],
    ['{"type":"subscribe","topic":7}', 'INVALID_TOPIC'],
    [`{"type":"subscribe","topic":"${'a'.repeat(201)}"}`, 'INVALID_TOPIC'],
    ['{"type":"subscribe","topic":"a","since":"x"}', 'BAD_REQUEST'],
    ['{"type":"subscribe","topic":"a","since":{"epoch":1,"offset":"1"}}', 'BAD_REQUEST'],
    ['{"type":"ping","id":{"a":1}}', 'BAD_REQUEST'],
    ['{"type":"ping","id":1.5}', 'BAD_REQUEST'],
  ])('rejects %s with %s', (text, code) => {
    const result = parseClientFrame(text)
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.code).toBe(code)
  })

  it('keeps the id of a bad frame so the error can be correlated', () => {
    expect(parseClientFrame('{"type":"subscribe","id":4,"topic":"a b"}')).toMatchObject({ ok: false, id: 4, code: 'INVALID_TOPIC' })
  })

  it('accepts every client frame and drops unknown fields', () => {
    expect(parseClientFrame('{"type":"hello","v":1,"auth":{"t":1}}')).toEqual({ ok: true, frame: { type: 'hello', v: 1, auth: { t: 1 } } })
    expect(parseClientFrame('{"type":"subscribe","id":7,"topic":"user:1","since":{"epoch":"e","offset":"3"},"x":1}')).toEqual({
      ok: true,
      frame: { type: 'subscribe', id: 7, topic: 'user:1', since: { epoch: 'e', offset: '3' } },
    })
    expect(parseClientFrame('{"type":"unsubscribe","id":8,"topic":"user:1"}')).toEqual({ ok: true, frame: { type: 'unsubscribe', id: 8, topic: 'user:1' } })
    expect(parseClientFrame('{"type":"ping","id":9}')).toEqual({ ok: true, frame: { type: 'ping', id: 9 } })
    expect(parseClientFrame('{"type":"auth","id":1,"auth":"t"}')).toEqual({ ok: true, frame: { type: 'auth', id: 1, auth: 't' } })
  })

  it('does not let a __proto__ key reach the frame', () => {
    const result = parseClientFrame('{"type":"subscribe","topic":"a","__proto__":{"polluted":true}}')
    expect(result.ok).toBe(true)
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined()
    if (result.ok) expect(Object.getPrototypeOf(result.frame)).toBe(Object.prototype)
  })
})

describe('isValidTopic', () => {
  it('accepts 1-200 characters of the topic alphabet', () => {
    expect(isValidTopic('user:515650034')).toBe(true)
    expect(isValidTopic('a.b-c_d@e:F9')).toBe(true)
    expect(isValidTopic('a'.repeat(200))).toBe(true)
    expect(isValidTopic('a'.repeat(201))).toBe(false)
    expect(isValidTopic('')).toBe(false)
    expect(isValidTopic('a/b')).toBe(false)
    expect(isValidTopic('é')).toBe(false)
    expect(isValidTopic(undefined)).toBe(false)
  })

  it('accepts one leading $ for system topics, and no $ elsewhere', () => {
    expect(isValidTopic('$stats')).toBe(true)
    expect(isValidTopic('$' + 'a'.repeat(199))).toBe(true)
    expect(isValidTopic('$' + 'a'.repeat(200))).toBe(false)
    expect(isValidTopic('$')).toBe(false)
    expect(isValidTopic('$$stats')).toBe(false)
    expect(isValidTopic('a$b')).toBe(false)
  })
})

describe('parseServerFrame', () => {
  it('accepts known frames and rejects the rest', () => {
    expect(parseServerFrame('{"type":"patch","topic":"a","payload":1,"offset":"1","epoch":"e"}').ok).toBe(true)
    expect(parseServerFrame('{"type":"patch"}').ok).toBe(false)
    expect(parseServerFrame('{"type":"weird"}').ok).toBe(false)
    expect(parseServerFrame('nope').ok).toBe(false)
  })
})
