#!/usr/bin/env node
/**
 * The `promptjang` command: `serve` (the default), `migrate`, `--help`.
 *
 * @since 0.1.0
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Result } from "effect"
import * as Config from "./Config.ts"
import * as Server from "./Server.ts"

const HELP = `promptjang: the PromptJang webhook delivery server

Usage:
  promptjang serve      start the server (API on PORT, default 8080; workers unless PROMPTJANG_ROLE=api)
  promptjang migrate    apply the database migrations and exit
  promptjang --help     show this help

Configuration comes from the environment: PORT, HOST, PROMPTJANG_DATABASE_URL (unset: embedded PGlite in
PROMPTJANG_DATA_DIR, default ./.promptjang), PROMPTJANG_ADMIN_TOKEN, PROMPTJANG_RETRY_SCHEDULE,
PROMPTJANG_DELIVERY_TIMEOUT, PROMPTJANG_ALLOW_PRIVATE_TARGETS, PROMPTJANG_BOOTSTRAP, PROMPTJANG_ROLE,
PROMPTJANG_WORKER_CONCURRENCY, LOG_LEVEL, LOG_FORMAT. See docs/configuration.md.
`

const [command = "serve", ...rest] = process.argv.slice(2)
if (command === "--help" || command === "-h" || command === "help" || rest.includes("--help")) {
  process.stdout.write(HELP)
  process.exit(0)
}

const parsed = Config.parse(process.env)
if (Result.isFailure(parsed)) {
  for (const problem of parsed.failure) console.error(`promptjang: ${problem.message}`)
  process.exit(2)
}
const config = parsed.success

const exitCode = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1

switch (command) {
  case "serve": {
    console.log(
      `PromptJang ${config.role === "worker" ? "worker" : `listening on http://${config.host}:${config.port}`} (${
        Server.describeDatabase(config)
      })`
    )
    NodeRuntime.runMain(Layer.launch(Server.layer(config, (line) => console.log(line))), {
      // SIGTERM interrupts the server: in-flight deliveries are released, and that is a clean exit.
      teardown: (exit, onExit) => onExit(exitCode(exit))
    })
    break
  }
  case "migrate": {
    const exit = await Effect.runPromiseExit(Layer.build(Server.storageLayer(config)).pipe(Effect.scoped))
    if (Exit.isSuccess(exit)) console.log(`Migrations applied (${Server.describeDatabase(config)}).`)
    else {console.error(
        `promptjang migrate failed: ${
          Cause.squash(exit.cause) instanceof Error ? (Cause.squash(exit.cause) as Error).message : "see the log"
        }`
      )}
    process.exit(exitCode(exit))
    break
  }
  default: {
    console.error(`promptjang: unknown command "${command}". Run promptjang --help.`)
    process.exit(2)
  }
}
