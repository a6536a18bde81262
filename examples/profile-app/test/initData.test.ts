import { createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { InitDataError, signInitData, validateInitData } from '../src/server/telegram/initData.js'

const BOT_TOKEN = '123456:AAE-known-test-token'
const NOW = Date.UTC(2026, 0, 1, 12, 0, 0)
const AUTH_DATE = Math.floor(NOW / 1000) - 60

const fields = {
  query_id: 'AAHdF6IQAAAAAN0XohDhrOrc',
  user: { id: 279058397, first_name: 'Vladislav', last_name: 'K', username: 'vdkfrost', photo_url: 'https://t.me/i/userpic/320/a.jpg' },
  auth_date: AUTH_DATE,
}

function codeOf(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(InitDataError)
    return (error as InitDataError).code
  }
  throw new Error('expected the init data to be refused')
}

describe('validateInitData', () => {
  it('accepts init data signed with the bot token and returns its user', () => {
    const initData = signInitData(fields, BOT_TOKEN)
    expect(validateInitData(initData, { botToken: BOT_TOKEN, now: NOW })).toEqual({
      userId: '279058397',
      tgUsername: 'vdkfrost',
      photoUrl: 'https://t.me/i/userpic/320/a.jpg',
    })
  })

  it('matches a hash computed independently from the documented algorithm', () => {
    // data-check-string: sorted key=value lines without hash; key: HMAC_SHA256("WebAppData", token).
    const user = JSON.stringify({ id: 42, first_name: 'Ann' })
    const dataCheckString = [`auth_date=${AUTH_DATE}`, `query_id=q1`, `user=${user}`].join('\n')
    const secret = createHmac('sha256', 'WebAppData').update(BOT_TOKEN).digest()
    const hash = createHmac('sha256', secret).update(dataCheckString).digest('hex')
    const initData = new URLSearchParams({ user, query_id: 'q1', auth_date: String(AUTH_DATE), hash }).toString()
    expect(validateInitData(initData, { botToken: BOT_TOKEN, now: NOW })).toEqual({ userId: '42', tgUsername: 'Ann', photoUrl: null })
  })

  it('refuses init data with a changed field', () => {
    const params = new URLSearchParams(signInitData(fields, BOT_TOKEN))
    params.set('user', JSON.stringify({ ...fields.user, photo_url: 'https://evil.example/x.jpg' }))
    expect(codeOf(() => validateInitData(params.toString(), { botToken: BOT_TOKEN, now: NOW }))).toBe('INIT_DATA_HASH_MISMATCH')
  })

  it('refuses init data with a changed hash', () => {
    const params = new URLSearchParams(signInitData(fields, BOT_TOKEN))
    const hash = params.get('hash')!
    params.set('hash', (hash[0] === '0' ? '1' : '0') + hash.slice(1))
    expect(codeOf(() => validateInitData(params.toString(), { botToken: BOT_TOKEN, now: NOW }))).toBe('INIT_DATA_HASH_MISMATCH')
  })

  it('refuses init data signed with another bot token', () => {
    const initData = signInitData(fields, '654321:another-bot')
    expect(codeOf(() => validateInitData(initData, { botToken: BOT_TOKEN, now: NOW }))).toBe('INIT_DATA_HASH_MISMATCH')
  })

  it('refuses an expired auth_date, and honours a configured age', () => {
    const old = signInitData({ ...fields, auth_date: Math.floor(NOW / 1000) - 86_401 }, BOT_TOKEN)
    expect(codeOf(() => validateInitData(old, { botToken: BOT_TOKEN, now: NOW }))).toBe('INIT_DATA_EXPIRED')
    const minuteOld = signInitData(fields, BOT_TOKEN)
    expect(codeOf(() => validateInitData(minuteOld, { botToken: BOT_TOKEN, now: NOW, maxAgeSeconds: 30 }))).toBe('INIT_DATA_EXPIRED')
  })

  it('refuses malformed init data without throwing anything but InitDataError', () => {
    const cases = ['', 'garbage', 'hash=zz', `auth_date=${AUTH_DATE}`, 'a=1&a=2&hash=' + 'a'.repeat(64), 'x'.repeat(9000)]
    for (const initData of cases) expect(codeOf(() => validateInitData(initData, { botToken: BOT_TOKEN, now: NOW }))).toBe('INIT_DATA_MALFORMED')
    const future = signInitData({ ...fields, auth_date: Math.floor(NOW / 1000) + 3600 }, BOT_TOKEN)
    expect(codeOf(() => validateInitData(future, { botToken: BOT_TOKEN, now: NOW }))).toBe('INIT_DATA_MALFORMED')
  })

  it('refuses init data without a usable user', () => {
    const noUser = signInitData({ auth_date: AUTH_DATE, query_id: 'q' }, BOT_TOKEN)
    expect(codeOf(() => validateInitData(noUser, { botToken: BOT_TOKEN, now: NOW }))).toBe('INIT_DATA_NO_USER')
    const badId = signInitData({ auth_date: AUTH_DATE, user: { id: 'x' } }, BOT_TOKEN)
    expect(codeOf(() => validateInitData(badId, { botToken: BOT_TOKEN, now: NOW }))).toBe('INIT_DATA_NO_USER')
  })

  it('drops a photo that is not https and falls back to the full name', () => {
    const initData = signInitData({ auth_date: AUTH_DATE, user: { id: 7, first_name: 'Ann', last_name: 'Lee', photo_url: 'http://x/y.jpg' } }, BOT_TOKEN)
    expect(validateInitData(initData, { botToken: BOT_TOKEN, now: NOW })).toEqual({ userId: '7', tgUsername: 'Ann Lee', photoUrl: null })
  })
})
