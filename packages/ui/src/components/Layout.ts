/**
 * The signed-in frame: a skip link, the header with the navigation (the
 * current page marked with `aria-current`), who is signed in with which
 * role, the sign-out button, and the page's main region.
 */
import { html } from "htm/preact"
import type { ComponentChildren } from "preact"
import { useState } from "preact/hooks"
import { Link, useLocation } from "wouter-preact"
import { useSession } from "../session.ts"
import { ErrorBanner } from "./common.ts"

const pages = [
  { href: "/", label: "Overview" },
  { href: "/tasks", label: "Tasks" },
  { href: "/queues", label: "Queues" },
  { href: "/nodes", label: "Nodes" },
  { href: "/lanes", label: "Lanes" },
  { href: "/audit", label: "Audit log" }
] as const

const isCurrent = (href: string, location: string) =>
  href === "/" ? location === "/" : location === href || location.startsWith(`${href}/`)

export const Layout = ({ children }: { children: ComponentChildren }) => {
  const { who, signOut } = useSession()
  const [location] = useLocation()
  const [error, setError] = useState<unknown>(undefined)
  return html`<a class="skip" href="#main">Skip to content</a>
    <header class="top">
      <span class="brand">AsterForge <span class="muted">admin</span></span>
      <nav aria-label="Main">
        <ul>
          ${pages.map(
            (p) =>
              html`<li key=${p.href}>
                <${Link} href=${p.href} aria-current=${isCurrent(p.href, location) ? "page" : undefined}>${p.label}<//>
              </li>`
          )}
        </ul>
      </nav>
      <div class="who">
        <span data-testid="who">${who.actor} · <strong data-testid="role">${who.role}</strong></span>
        <button type="button" onClick=${() => signOut().catch(setError)} data-testid="sign-out">Sign out</button>
      </div>
    </header>
    <main id="main" tabindex="-1">
      <${ErrorBanner} error=${error} what="Sign-out failed" />
      ${children}
    </main>`
}
