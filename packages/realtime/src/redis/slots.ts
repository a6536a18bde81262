/**
 * Redis Cluster hash slots, computed as Redis does (CRC16/XMODEM of the key, or of its hash tag,
 * modulo 16384), so that the bus groups a multi-topic publish by slot and knows which shard serves
 * a topic's channel without asking.
 */

export const SLOTS = 16_384

const TABLE = (() => {
  const table = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    table[i] = crc
  }
  return table
})()

function crc16(bytes: Uint8Array): number {
  let crc = 0
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ byte) & 0xff] as number)
  return crc
}

const encoder = new TextEncoder()

/**
 * The hash slot of `key`: only the part between the first `{` and the next `}` counts when that
 * part is not empty (the hash tag), as in Redis.
 */
export function keySlot(key: string): number {
  const open = key.indexOf('{')
  if (open >= 0) {
    const close = key.indexOf('}', open + 1)
    if (close > open + 1) key = key.slice(open + 1, close)
  }
  return crc16(encoder.encode(key)) % SLOTS
}

/** Topics of one publish that share a slot: their places in the call, and themselves, in order. */
export interface SlotGroup {
  indices: number[]
  topics: string[]
}

/** Groups the topics of one publish by the slot of their keys (`keyOf`), each group in the order given. */
export function groupBySlot(topics: readonly string[], keyOf: (topic: string) => string): SlotGroup[] {
  const groups = new Map<number, SlotGroup>()
  topics.forEach((topic, index) => {
    const slot = keySlot(keyOf(topic))
    const group = groups.get(slot)
    if (group) {
      group.indices.push(index)
      group.topics.push(topic)
    } else {
      groups.set(slot, { indices: [index], topics: [topic] })
    }
  })
  return [...groups.values()]
}
