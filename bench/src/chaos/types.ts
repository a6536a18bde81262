/**
 * One row of the chaos table (`npm run chaos -w bench`): what a fault scenario did to the clients.
 * Each scenario lives in its own file of this folder and exports `run(options): Promise<ChaosRow[]>`.
 */
export interface ChaosRow {
  /** e.g. "rolling deploy", "sentinel: SENTINEL FAILOVER", "cluster: SIGKILL of a primary". */
  scenario: string
  clients: number
  /** Publishes attempted, confirmed (resolved) and rejected (e.g. BUS_UNAVAILABLE). */
  published: number
  confirmed: number
  rejected: number
  /** Confirmed messages a client that held the topic never received and was not told to resync for. */
  silentGaps: number
  duplicates: number
  /** `resync` events the clients got, and why (one line). */
  resyncs: number
  resyncReason?: string
  /** Anything else the scenario measured (e.g. "peak reconnects/s per instance 31 (limit 60)"). */
  notes?: string
  /** Whether every must-show bound of the scenario held. */
  pass: boolean
}

export interface ChaosOptions {
  /** Scenario length in seconds (each scenario has its own default; `--quick` shortens it). */
  seconds?: number
  quick?: boolean
}
