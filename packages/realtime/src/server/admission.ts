import type { IncomingMessage } from 'node:http'
import { BlockList, isIP } from 'node:net'
import { peerAddress } from './socket.js'
import type { Limits } from './types.js'

/**
 * Which proxies in front of the server may name the client's address in `X-Forwarded-For`, as
 * Fastify's `trustProxy` takes it:
 * - `true`: every hop (the client is the leftmost address of the header);
 * - a number `n`: the `n` hops nearest the server (the socket's peer is hop 0);
 * - addresses or CIDR ranges (an array, or a comma-separated string): the hops with those addresses;
 * - a function `(address, hop) => boolean`.
 * Default `false`: the socket's own address, whatever the header says.
 */
export type TrustProxy = boolean | number | string | readonly string[] | ((address: string, hop: number) => boolean)

/** Why an upgrade is refused for the caps. */
export type AdmissionRefusal = 'max_connections' | 'max_connections_per_address'

/** `::ffff:10.0.0.1` (an IPv4 peer of a dual-stack socket) is `10.0.0.1`. */
function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address
}

/** Turns a `TrustProxy` into a test of one hop, or undefined when no hop is trusted. */
export function trustTest(trust: TrustProxy | undefined): ((address: string, hop: number) => boolean) | undefined {
  if (trust === undefined || trust === false) return undefined
  if (trust === true) return () => true
  if (typeof trust === 'function') return trust
  if (typeof trust === 'number') {
    if (!Number.isInteger(trust) || trust < 0) throw new TypeError(`trustProxy must be a hop count >= 0, got ${trust}`)
    return (_address, hop) => hop < trust
  }
  const entries = (typeof trust === 'string' ? trust.split(',') : [...trust]).map((entry) => entry.trim()).filter(Boolean)
  const list = new BlockList()
  for (const entry of entries) {
    const [address = '', bits] = entry.split('/')
    const family = isIP(address)
    if (family === 0) throw new TypeError(`trustProxy: ${JSON.stringify(entry)} is not an IP address or CIDR range`)
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) list.addAddress(address, type)
    else list.addSubnet(address, Number(bits), type)
  }
  return (address) => {
    const family = isIP(address)
    return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6')
  }
}

/**
 * The client's address of an upgrade: the socket's peer, or, where that peer is a trusted proxy,
 * the nearest address in `X-Forwarded-For` (read from the right) that is not trusted (or the
 * leftmost one, when every hop is trusted).
 */
export function clientAddress(request: IncomingMessage, trusted: ((address: string, hop: number) => boolean) | undefined): string {
  const socketAddress = peerAddress(request.socket) ?? 'unknown'
  if (trusted === undefined) return socketAddress
  const peer = plainAddress(socketAddress)
  const header = request.headers['x-forwarded-for']
  if (header === undefined) return peer
  const forwarded = (Array.isArray(header) ? header.join(',') : header).split(',')
  let address = peer
  for (let hop = 0; trusted(address, hop); hop++) {
    const next = forwarded[forwarded.length - 1 - hop]?.trim()
    // Every hop trusted: the leftmost address is the client. A hop that is not an address
    // (garbage in the header) ends the walk at the last good one.
    if (next === undefined || isIP(plainAddress(next)) === 0) break
    address = plainAddress(next)
  }
  return address
}

/**
 * The connection caps: open connections in total and per client address, counted from the moment
 * an upgrade is admitted (before its handshake finishes, so that a burst cannot overshoot) until
 * its connection closes or the handshake fails.
 */
export class Admission {
  private total = 0
  /**
   * Open connections by address, with the address string they share: a connection keeps the one
   * string of its address (`admit` returns it), not a copy per connection.
   */
  private readonly perAddress = new Map<string, { address: string; count: number }>()
  private readonly trusted: ((address: string, hop: number) => boolean) | undefined

  constructor(
    private readonly limits: Required<Limits>,
    trustProxy?: TrustProxy,
  ) {
    this.trusted = trustTest(trustProxy)
  }

  /** The address the per-address cap counts for this upgrade. */
  addressOf(request: IncomingMessage): string {
    return clientAddress(request, this.trusted)
  }

  /**
   * Takes a place for a connection from `address`, or says which cap refuses it. Admitted, it
   * returns the address as a string shared by every connection from it (for the connection to keep).
   */
  admit(address: string): { refused: AdmissionRefusal } | { address: string } {
    if (this.total >= this.limits.maxConnections) return { refused: 'max_connections' }
    const entry = this.perAddress.get(address)
    if (entry !== undefined && entry.count >= this.limits.maxConnectionsPerAddress) return { refused: 'max_connections_per_address' }
    this.total++
    if (entry !== undefined) {
      entry.count++
      return entry
    }
    const created = { address, count: 1 }
    this.perAddress.set(address, created)
    return created
  }

  /** Gives back the place of a connection from `address` (closed, or its handshake failed). */
  release(address: string): void {
    this.total--
    const entry = this.perAddress.get(address)
    if (entry === undefined) return
    if (--entry.count === 0) this.perAddress.delete(address)
  }
}
