import { defineConfig } from "vitest/config"
import projects from "./vitest.workspace.ts"

export default defineConfig({
  test: {
    projects,
    // Finds (or starts) the Postgres every test database is created on; builds the admin UI the nodes serve.
    globalSetup: ["./scripts/test-database.ts", "./scripts/build-ui.ts"]
  }
})
