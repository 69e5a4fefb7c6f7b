#!/usr/bin/env node
/**
 * The `promptjang` command: `serve` (the default), `migrate`, `org create`,
 * `keys create`, and `--help` on each.
 *
 * Exit codes: 0 done, 1 failed (the database is in use, an unknown
 * organization, a database error), 2 a usage or configuration error.
 *
 * @since 0.1.0
 */
import type { OrganizationId } from "@promptjang/core/Ids"
import type { Cause as CauseType, Effect as EffectType } from "effect"

// The modules of the server are loaded once the command line is read, so that --help and usage errors are instant.

/** The plans of the default catalog (Quota.defaultCatalog), checked against it when --plan is given. */
const PLANS = "starter|pro"

const ENVIRONMENT =
  `Configuration comes from the environment: PORT, HOST, PROMPTJANG_DATABASE_URL (unset: embedded PGlite in
PROMPTJANG_DATA_DIR, default ./.promptjang), PROMPTJANG_ADMIN_TOKEN, PROMPTJANG_RETRY_SCHEDULE,
PROMPTJANG_DELIVERY_TIMEOUT, PROMPTJANG_ALLOW_PRIVATE_TARGETS, PROMPTJANG_BOOTSTRAP, PROMPTJANG_ROLE,
PROMPTJANG_WORKER_CONCURRENCY, PROMPTJANG_ENDPOINT_CONCURRENCY, LOG_LEVEL, LOG_FORMAT. See docs/configuration.md.
`

const EMBEDDED_NOTE =
  `The embedded database can be open in one process at a time: while a server runs on it, this command
refuses. Stop the server first, use PostgreSQL (PROMPTJANG_DATABASE_URL), or create organizations through the
API with PROMPTJANG_ADMIN_TOKEN.
`

const HELP = {
  top: `promptjang: the PromptJang webhook delivery server

Usage:
  promptjang serve                       start the server (API on PORT, default 8080; workers unless PROMPTJANG_ROLE=api)
  promptjang migrate                     apply the database migrations and exit
  promptjang org create --name N [--plan ${PLANS}] [--json]
                                         create an organization and its first API key
  promptjang keys create --org ORG_ID [--name N] [--json]
                                         create an API key for an organization
  promptjang COMMAND --help              show the help of a command
  promptjang --help                      show this help

Exit codes: 0 done, 1 failed, 2 usage or configuration error.

${ENVIRONMENT}`,
  serve: `Usage: promptjang serve

Starts the server: the HTTP API on HOST:PORT (default 0.0.0.0:8080) and the delivery workers, or one of them
with PROMPTJANG_ROLE=api|worker. On the first start against an empty database it creates an organization and
prints its API key once (PROMPTJANG_BOOTSTRAP=false turns this off). SIGTERM or SIGINT stops it cleanly.

On the embedded database it locks PROMPTJANG_DATA_DIR: a second server on the same directory refuses to start.

${ENVIRONMENT}`,
  migrate: `Usage: promptjang migrate

Applies the pending database migrations (PostgreSQL at PROMPTJANG_DATABASE_URL, or the embedded database in
PROMPTJANG_DATA_DIR) and exits. The server also applies them when it starts.

${EMBEDDED_NOTE}
${ENVIRONMENT}`,
  org: `Usage: promptjang org create --name N [--plan ${PLANS}] [--json]

Commands:
  create    create an organization and its first API key (promptjang org create --help)
`,
  orgCreate: `Usage: promptjang org create --name N [--plan ${PLANS}] [--json]

Creates an organization with a first API key and prints its id, name, plan and the key. The key is shown
this once: only its hash is stored.

Options:
  --name N        the organization's name (required)
  --plan PLAN     ${PLANS.replace("|", " or ")} (default starter)
  --json          print one JSON object: {"id", "name", "plan", "api_key"}
  --help          show this help

${EMBEDDED_NOTE}
${ENVIRONMENT}`,
  keys: `Usage: promptjang keys create --org ORG_ID [--name N] [--json]

Commands:
  create    create an API key for an organization (promptjang keys create --help)
`,
  keysCreate: `Usage: promptjang keys create --org ORG_ID [--name N] [--json]

Creates an API key for an existing organization and prints it. The key is shown this once: only its hash is
stored.

Options:
  --org ORG_ID    the organization's id, org_... (required)
  --name N        a name for the key (default "API key")
  --json          print one JSON object: {"id", "name", "key", "prefix", "created_at"}
  --help          show this help

${EMBEDDED_NOTE}
${ENVIRONMENT}`
} as const

type HelpTopic = keyof typeof HELP

/** Stops with a usage error: the problem, the usage line, and where the help is. */
const usageError = (topic: HelpTopic, command: string, problem: string): never => {
  const usage = HELP[topic].split("\n").find((line) => line.startsWith("Usage:"))
  console.error(`${command}: ${problem}`)
  if (usage !== undefined) console.error(usage)
  console.error(`Run ${command} --help for more.`)
  return process.exit(2)
}

const isHelp = (arg: string) => arg === "--help" || arg === "-h"

/** `--flag value`, `--flag=value` and switches; anything else is a usage error. */
const parseFlags = <const Spec extends Record<string, "value" | "switch">>(
  args: ReadonlyArray<string>,
  spec: Spec,
  topic: HelpTopic,
  command: string
): { readonly [K in keyof Spec]?: Spec[K] extends "value" ? string : true } => {
  const flags: Record<string, string | true> = {}
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? ""
    if (!arg.startsWith("--")) usageError(topic, command, `unexpected argument "${arg}".`)
    const eq = arg.indexOf("=")
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
    const kind = Object.hasOwn(spec, name) ? spec[name] : undefined
    if (kind === undefined) {
      return usageError(topic, command, `unknown option --${name}.`)
    }
    if (Object.hasOwn(flags, name)) usageError(topic, command, `--${name} is given twice.`)
    if (kind === "switch") {
      if (eq !== -1) usageError(topic, command, `--${name} takes no value.`)
      flags[name] = true
      continue
    }
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1)
    if (value === undefined || (eq === -1 && value.startsWith("--"))) {
      return usageError(topic, command, `--${name} needs a value.`)
    }
    flags[name] = value
  }
  return flags as { readonly [K in keyof Spec]?: Spec[K] extends "value" ? string : true }
}

// ---------------------------------------------------------------------------------------------------------------
// The command line, read before the configuration so that --help works whatever the environment says.

type Command =
  | { readonly _tag: "serve" }
  | { readonly _tag: "migrate" }
  | { readonly _tag: "org create"; readonly name: string; readonly plan: string | undefined; readonly json: boolean }
  | { readonly _tag: "keys create"; readonly org: string; readonly name: string; readonly json: boolean }

const help = (topic: HelpTopic): never => {
  process.stdout.write(HELP[topic])
  return process.exit(0)
}

const noArguments = (args: ReadonlyArray<string>, topic: HelpTopic, command: string) => {
  if (args.some(isHelp)) help(topic)
  if (args.length > 0) usageError(topic, command, `unexpected argument "${args[0]}".`)
}

const readCommand = async (argv: ReadonlyArray<string>): Promise<Command> => {
  const [first = "serve", ...rest] = argv
  switch (first) {
    case "--help":
    case "-h":
      return help("top")
    case "help": {
      const [topic, sub] = rest
      if (topic === "org") return help(sub === "create" ? "orgCreate" : "org")
      if (topic === "keys") return help(sub === "create" ? "keysCreate" : "keys")
      if (topic === "serve" || topic === "migrate") return help(topic)
      return help("top")
    }
    case "serve":
    case "migrate": {
      noArguments(rest, first, `promptjang ${first}`)
      return { _tag: first }
    }
    case "org":
    case "keys": {
      const [sub, ...args] = rest
      const groupTopic = first
      if (sub === undefined) return usageError(groupTopic, `promptjang ${first}`, "missing command: create.")
      if (isHelp(sub)) return help(groupTopic)
      if (sub !== "create") return usageError(groupTopic, `promptjang ${first}`, `unknown command "${sub}".`)
      const command = `promptjang ${first} create`
      if (first === "org") {
        if (args.some(isHelp)) return help("orgCreate")
        const flags = parseFlags(args, { name: "value", plan: "value", json: "switch" }, "orgCreate", command)
        if (flags.name === undefined) return usageError("orgCreate", command, "missing --name.")
        if (flags.name.trim() === "") return usageError("orgCreate", command, "--name must not be empty.")
        if (flags.plan !== undefined && !(await import("@promptjang/core/Quota")).defaultCatalog.has(flags.plan)) {
          return usageError("orgCreate", command, `unknown plan "${flags.plan}": use ${PLANS.replace("|", " or ")}.`)
        }
        return { _tag: "org create", name: flags.name, plan: flags.plan, json: flags.json === true }
      }
      if (args.some(isHelp)) return help("keysCreate")
      const flags = parseFlags(args, { org: "value", name: "value", json: "switch" }, "keysCreate", command)
      if (flags.org === undefined) return usageError("keysCreate", command, "missing --org.")
      if (flags.name !== undefined && flags.name.trim() === "") {
        return usageError("keysCreate", command, "--name must not be empty.")
      }
      return { _tag: "keys create", org: flags.org, name: flags.name?.trim() ?? "API key", json: flags.json === true }
    }
    default:
      return usageError("top", "promptjang", `unknown command "${first}".`)
  }
}

const command = await readCommand(process.argv.slice(2))

const [
  NodeRuntime,
  { Accounts },
  { Cause, Effect, Exit, Layer, Logger, References, Result },
  Config,
  EmbeddedLock,
  Server
] = await Promise.all([
  import("@effect/platform-node/NodeRuntime"),
  import("@promptjang/core"),
  import("effect"),
  import("./Config.ts"),
  import("./EmbeddedLock.ts"),
  import("./Server.ts")
])

const parsed = Config.parse(process.env)
if (Result.isFailure(parsed)) {
  for (const problem of parsed.failure) console.error(`promptjang: ${problem.message}`)
  process.exit(2)
}
const config = parsed.success

// ---------------------------------------------------------------------------------------------------------------
// Failures: one clear line each, with the exit code of its kind.

/** Why the HTTP server could not listen, with the setting to change. */
const listenFailure = (error: unknown): string => {
  const cause = typeof error === "object" && error !== null && "cause" in error ? error.cause : undefined
  const code = typeof cause === "object" && cause !== null && "code" in cause ? cause.code : undefined
  const where = `Cannot listen on ${config.host}:${config.port}`
  switch (code) {
    case "EADDRINUSE":
      return `${where}: the address is already in use, by another server or an earlier PromptJang still running. ` +
        "Stop it, or set PORT to a free port."
    case "EACCES":
      return `${where}: permission denied (ports below 1024 need privileges). Set PORT to 1024 or above.`
    case "EADDRNOTAVAIL":
      return `${where}: ${config.host} is not an address of this machine. Set HOST to one of its addresses, ` +
        "or to 0.0.0.0 for all of them."
    default:
      return `${where}: ${cause instanceof Error ? cause.message : String(cause ?? error)}`
  }
}

const describeFailure = (
  cause: CauseType.Cause<unknown>
): { readonly message: string; readonly code: number; readonly expected: boolean } => {
  const error = Cause.squash(cause)
  const tag = typeof error === "object" && error !== null && "_tag" in error ? error._tag : undefined
  const message = error instanceof Error ? error.message : String(error)
  switch (tag) {
    case "ServeError":
      return { message: listenFailure(error), code: 1, expected: true }
    case "DatabaseInUse":
    case "LockFailed":
    case "NotFound":
      return { message, code: 1, expected: true }
    case "ValidationFailed":
      return { message, code: 2, expected: true }
    default:
      return { message, code: 1, expected: false }
  }
}

/** The logs of the one-shot commands go to stderr, so that stdout carries only the result. */
const commandLogger = Layer.mergeAll(
  Logger.layer([config.logFormat === "json" ? Logger.withConsoleError(Logger.formatJson) : Logger.consolePretty()]),
  Layer.succeed(Logger.LogToStderr, true),
  Layer.succeed(References.MinimumLogLevel, config.logLevel === "Info" ? "Warn" : config.logLevel)
)

/** Runs a one-shot command and exits with its code. */
const runCommand = async <A>(
  name: string,
  program: EffectType.Effect<A, unknown>,
  print: (result: A) => void
): Promise<never> => {
  const exit = await Effect.runPromiseExit(program.pipe(Effect.provide(commandLogger)))
  if (Exit.isSuccess(exit)) {
    print(exit.value)
    return process.exit(0)
  }
  const failure = describeFailure(exit.cause)
  console.error(
    `promptjang ${name}: ${failure.message}${failure.expected ? "" : ` (${Server.describeDatabase(config)})`}`
  )
  // The whole cause when the error says nothing, or when debugging.
  if (!failure.expected && (failure.message === "" || config.logLevel === "Debug" || config.logLevel === "Trace")) {
    console.error(Cause.pretty(exit.cause))
  }
  return process.exit(failure.code)
}

/** Accounts over the configured database (migrated), holding the embedded database's lock. */
const accountsLayer = (role: string) =>
  Accounts.layer.pipe(
    Layer.provide(Server.storageLayer(config)),
    Layer.provide(EmbeddedLock.layerFor(config, role))
  )

const KEY_NOTE = "The API key is shown this once: only its hash is stored, so keep it now."

switch (command._tag) {
  case "serve": {
    const program = Layer.build(Server.layer(config, (line) => console.log(line))).pipe(
      Effect.andThen(Effect.sync(() =>
        console.log(
          `PromptJang ${
            config.role === "worker" ? "worker running" : `listening on http://${config.host}:${config.port}`
          } (${Server.describeDatabase(config)})`
        )
      )),
      Effect.andThen(Effect.never),
      Effect.scoped
    )
    NodeRuntime.runMain(program, {
      disableErrorReporting: true,
      teardown: (exit, onExit) => {
        // SIGTERM interrupts the server: in-flight deliveries are released, and that is a clean exit.
        if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return onExit(0)
        const failure = describeFailure(exit.cause)
        console.error(`promptjang serve: ${failure.message}`)
        if (!failure.expected) console.error(Cause.pretty(exit.cause))
        onExit(failure.code)
      }
    })
    break
  }
  case "migrate": {
    await runCommand(
      "migrate",
      Layer.build(Server.storageLayer(config).pipe(Layer.provide(EmbeddedLock.layerFor(config, "migrate")))).pipe(
        Effect.scoped
      ),
      () => console.log(`Migrations applied (${Server.describeDatabase(config)}).`)
    )
    break
  }
  case "org create": {
    const { json, name, plan } = command
    await runCommand(
      "org create",
      Effect.gen(function*() {
        const accounts = yield* Accounts.Accounts
        return yield* accounts.createOrganization({ name, plan })
      }).pipe(Effect.provide(accountsLayer("org create"))),
      ({ apiKey, organization }) => {
        if (json) {
          console.log(JSON.stringify({
            id: organization.id,
            name: organization.name,
            plan: organization.plan,
            api_key: apiKey.key
          }))
          return
        }
        console.log(`Created organization ${organization.id} (${Server.describeDatabase(config)}).`)
        console.log(`  id:      ${organization.id}`)
        console.log(`  name:    ${organization.name}`)
        console.log(`  plan:    ${organization.plan}`)
        console.log(`  API key: ${apiKey.key}`)
        console.log(KEY_NOTE)
      }
    )
    break
  }
  case "keys create": {
    const { json, name, org } = command
    await runCommand(
      "keys create",
      Effect.gen(function*() {
        const accounts = yield* Accounts.Accounts
        return yield* accounts.createApiKey(org as OrganizationId, name)
      }).pipe(Effect.provide(accountsLayer("keys create"))),
      ({ key, record }) => {
        if (json) {
          console.log(JSON.stringify({
            id: record.id,
            name: record.name,
            key,
            prefix: record.prefix,
            created_at: new Date(record.createdAt).toISOString()
          }))
          return
        }
        console.log(`Created API key ${record.id} for organization ${record.organizationId}.`)
        console.log(`  id:      ${record.id}`)
        console.log(`  name:    ${record.name}`)
        console.log(`  prefix:  ${record.prefix}`)
        console.log(`  API key: ${key}`)
        console.log(KEY_NOTE)
      }
    )
    break
  }
}
