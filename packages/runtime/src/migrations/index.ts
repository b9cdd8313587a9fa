/**
 * The ordered list of runtime migrations. Files are numbered and never edited
 * once landed; a change of schema is a new file.
 */
import m0001 from "./0001_nodes.ts"
import m0002 from "./0002_audit_events.ts"
import m0003 from "./0003_tasks.ts"
import m0004 from "./0004_maintenance.ts"
import m0005 from "./0005_drop_task_artifacts.ts"
import m0006 from "./0006_callback_token_hash.ts"
import m0007 from "./0007_control_plane.ts"
import m0008 from "./0008_schedules.ts"
import m0010 from "./0010_node_heartbeat_interval.ts"

export const all = {
  "0001_nodes": m0001,
  "0002_audit_events": m0002,
  "0003_tasks": m0003,
  "0004_maintenance": m0004,
  "0005_drop_task_artifacts": m0005,
  "0006_callback_token_hash": m0006,
  "0007_control_plane": m0007,
  "0008_schedules": m0008,
  "0010_node_heartbeat_interval": m0010
}

/** The runtime's bookkeeping table (each module has its own, see Database.migrationSet). */
export const table = "asterforge_migrations"
