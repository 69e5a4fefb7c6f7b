/**
 * Which delivery targets are allowed: the SSRF guard of SPEC §4.
 *
 * Endpoint URLs must be http(s) and, unless private targets are allowed, may
 * not point at loopback, private, link-local, CGNAT, multicast, reserved or
 * cloud-metadata addresses. This module checks URLs and IP addresses as data;
 * the HTTP client of a host applies {@link isBlockedAddress} again to the
 * address it actually connects to.
 *
 * @since 0.1.0
 */
import { Context, Result } from "effect"
import { isIP } from "node:net"
import { ValidationFailed } from "./Errors.ts"

/** The guard's setting. */
export interface TargetPolicy {
  readonly allowPrivateTargets: boolean
}

/** The current policy (default: private targets refused). */
export const TargetPolicy = Context.Reference<TargetPolicy>("@promptjang/core/Targets/TargetPolicy", {
  defaultValue: () => ({ allowPrivateTargets: false })
})

/** The setting that allows private targets, named in every refusal. */
export const SETTING = "PROMPTJANG_ALLOW_PRIVATE_TARGETS"

const v4ToNumber = (ip: string): number => ip.split(".").reduce((acc, part) => acc * 256 + Number(part), 0)

const V4_BLOCKED: ReadonlyArray<readonly [string, number]> = [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // CGNAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local, cloud metadata (169.254.169.254)
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.88.99.0", 24], // 6to4 relay
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4] // reserved, broadcast
]

const isBlockedV4 = (ip: string): boolean => {
  const value = v4ToNumber(ip)
  return V4_BLOCKED.some(([base, bits]) => {
    const size = 2 ** (32 - bits)
    const start = v4ToNumber(base)
    return value >= start && value < start + size
  })
}

/** The eight 16-bit groups of an IPv6 address (with an embedded IPv4 tail expanded). */
const v6Groups = (ip: string): Array<number> => {
  let address = ip.toLowerCase()
  const zone = address.indexOf("%")
  if (zone !== -1) address = address.slice(0, zone)
  const v4Tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(address)
  if (v4Tail?.[1] !== undefined) {
    const n = v4ToNumber(v4Tail[1])
    address = address.slice(0, -v4Tail[1].length) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`
  }
  const [head = "", tail] = address.split("::")
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)))
  const left = parse(head)
  const right = tail === undefined ? [] : parse(tail)
  const fill = tail === undefined ? [] : new Array<number>(8 - left.length - right.length).fill(0)
  return [...left, ...fill, ...right]
}

const isBlockedV6 = (ip: string): boolean => {
  const g = v6Groups(ip)
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0, g6 = 0, g7 = 0] = g
  const embeddedV4 = () => `${g6 >> 8}.${g6 & 255}.${g7 >> 8}.${g7 & 255}`
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0) {
    if (g5 === 0 && g6 === 0 && (g7 === 0 || g7 === 1)) return true // :: and ::1
    if (g5 === 0xffff || g5 === 0) return isBlockedV4(embeddedV4()) // IPv4-mapped and -compatible
  }
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return isBlockedV4(embeddedV4()) // NAT64
  if ((g0 & 0xfe00) === 0xfc00) return true // unique local (incl. fd00:ec2::254 metadata)
  if ((g0 & 0xffc0) === 0xfe80) return true // link-local
  if ((g0 & 0xffc0) === 0xfec0) return true // site-local (deprecated)
  if ((g0 & 0xff00) === 0xff00) return true // multicast
  if (g0 === 0x2001 && g1 === 0x0db8) return true // documentation
  return false
}

/** Whether an IP address (v4 or v6, as text) is one the guard refuses. Non-IP text is refused too. */
export const isBlockedAddress = (ip: string): boolean => {
  const unbracketed = ip.startsWith("[") && ip.endsWith("]") ? ip.slice(1, -1) : ip
  switch (isIP(unbracketed)) {
    case 4:
      return isBlockedV4(unbracketed)
    case 6:
      return isBlockedV6(unbracketed)
    default:
      return true
  }
}

const invalid = (message: string) => Result.fail(new ValidationFailed({ message, details: [{ path: "url", message }] }))

/**
 * Checks an endpoint URL as written: http(s), and, unless the policy allows
 * private targets, no blocked IP literal and no `localhost`. Host names are
 * checked again on their resolved address at send time.
 */
export const validateUrl = (input: string, policy: TargetPolicy): Result.Result<URL, ValidationFailed> => {
  let url: URL
  try {
    url = new URL(input)
  } catch {
    return invalid(`"${input}" is not an absolute URL: write it as https://host/path.`)
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return invalid(`Endpoint URLs must use http or https, not ${url.protocol.replace(":", "")}.`)
  }
  if (url.username !== "" || url.password !== "") {
    return invalid("Endpoint URLs may not carry credentials; use custom endpoint headers instead.")
  }
  if (policy.allowPrivateTargets) return Result.succeed(url)
  // a trailing dot ("localhost.") names the same host
  const host = url.hostname.toLowerCase().replace(/\.$/, "")
  const literal = host.startsWith("[") ? host.slice(1, -1) : host
  const blocked = isIP(literal) !== 0
    ? isBlockedAddress(literal)
    : host === "localhost" || host.endsWith(".localhost") || host.endsWith(".internal")
  return blocked
    ? invalid(
      `${url.hostname} is a loopback, private, link-local or metadata address, which endpoints may not target; set ${SETTING}=true on the server to allow private targets.`
    )
    : Result.succeed(url)
}
