/**
 * CPU time of the processes a benchmark measures, read from Linux's /proc (user plus system time): a process by
 * its pid, and PostgreSQL's processes on this machine, found by name. Each reading is undefined where /proc
 * cannot tell (another OS, or PostgreSQL on another machine).
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

/** This process (any OS). */
export const currentProcessClock: CpuClock = () => {
  const used = process.cpuUsage()
  return (used.user + used.system) / 1e6
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

/** CPU seconds of every process named `postgres` on this machine (the postmaster, its backends, its helpers). */
const postgresProcesses = (): Map<string, number> | undefined => {
  let entries: Array<string>
  try {
    entries = readdirSync("/proc")
  } catch {
    return undefined
  }
  const seconds = new Map<string, number>()
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = statOf(entry)
      if (stat.command === "postgres") seconds.set(entry, stat.seconds)
    } catch {
      // It exited while the list was read.
    }
  }
  return seconds.size === 0 ? undefined : seconds
}

/**
 * Starts measuring PostgreSQL's processes: the returned function gives the CPU seconds they used since, counting
 * the processes started meanwhile from zero (a backend that exited meanwhile is not counted).
 */
export const postgresSince = (): () => number | undefined => {
  const start = postgresProcesses()
  return () => {
    const end = postgresProcesses()
    if (start === undefined || end === undefined) return undefined
    let used = 0
    for (const [pid, seconds] of end) used += seconds - (start.get(pid) ?? 0)
    return used
  }
}

/** Starts measuring: the returned function gives the CPU seconds used since, or undefined. */
export const since = (clock: CpuClock): () => number | undefined => {
  const start = clock()
  return () => {
    const end = clock()
    return start === undefined || end === undefined || end < start ? undefined : end - start
  }
}
