/**
 * @promptjang/dashboard: the web UI of SPEC §9, served by the server at `/`.
 *
 * @since 0.1.0
 */
export * as Dashboard from "./Dashboard.ts"
