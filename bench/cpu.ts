/**
 * CPU time of the processes a benchmark measures, read from Linux's /proc (user plus system time): a process by
 * its pid, and PostgreSQL's processes on this machine, found by name. Each reading is undefined where /proc
 * cannot tell (another OS, or PostgreSQL on another machine).
 *
 * A PostgreSQL backend that exits between two readings takes its time with it, so a figure over a run counts
 * the connections that stayed open through it: the pools of the servers measured.
 */
import { execFileSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"

/** CPU seconds used so far: undefined when they cannot be told. */
export type CpuClock = () => number | undefined

const ticksPerSecond = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" })) || 100
  } catch {
    return 100
  }
})()

/** The command name and CPU seconds of a process (fields 2, 14 and 15 of its stat line). */
const statOf = (pid: number | string) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const close = stat.lastIndexOf(")")
  const fields = stat.slice(close + 2).split(" ")
  return {
    command: stat.slice(stat.indexOf("(") + 1, close),
    seconds: (Number(fields[11]) + Number(fields[12])) / ticksPerSecond
  }
}

/** One process, by pid. */
export const processClock = (pid: number | undefined): CpuClock => () => {
  if (pid === undefined) return undefined
  try {
    return statOf(pid).seconds
  } catch {
    return undefined
  }
}

/** Every process named `postgres` on this machine (the postmaster, its backends and its helpers). */
export const postgresClock: CpuClock = () => {
  let entries: Array<string>
  try {
    entries = readdirSync("/proc")
  } catch {
    return undefined
  }
  let total: number | undefined
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const { command, seconds } = statOf(entry)
      if (command === "postgres") total = (total ?? 0) + seconds
    } catch {
      // It exited while the list was read.
    }
  }
  return total
}

/** Starts measuring: the returned function gives the CPU seconds used since, or undefined. */
export const since = (clock: CpuClock): () => number | undefined => {
  const start = clock()
  return () => {
    const end = clock()
    return start === undefined || end === undefined || end < start ? undefined : end - start
  }
}
