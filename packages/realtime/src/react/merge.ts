/** Keys a merge never applies: they would reach or replace an object's prototype. */
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/**
 * `{...prev, ...patch}` without prototype pollution: own enumerable keys of `patch` except
 * `__proto__`, `constructor` and `prototype`. A patch that is not a plain object replaces the state.
 */
export function safeMerge<S>(prev: S, patch: unknown): S {
  if (!isPlainObject(patch)) return patch as S
  const next: Record<string, unknown> = isPlainObject(prev) ? { ...prev } : {}
  for (const key of Object.keys(patch)) {
    if (UNSAFE_KEYS.has(key)) continue
    next[key] = patch[key]
  }
  return next as S
}
