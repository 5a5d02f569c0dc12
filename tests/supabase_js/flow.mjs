// The real supabase-js auth client against a live Hearth: every call a migrating frontend makes.
// Run by tests/integration/test_supabase_js_live.py with HEARTH_URL, ANON_KEY, OUTBOX_DIR,
// IMPORTED_EMAIL and IMPORTED_PASSWORD set. Prints one line per step; exits 1 at the first failure.
import { createClient, AuthApiError } from '@supabase/supabase-js'
import fs from 'node:fs'
import path from 'node:path'
import ws from 'ws'

const { HEARTH_URL, ANON_KEY, OUTBOX_DIR, IMPORTED_EMAIL, IMPORTED_PASSWORD } = process.env
const EMAIL = `js-${Date.now()}@example.com`
const PASSWORD = 'a long supabase-js passphrase'
const NEW_PASSWORD = 'an even longer new passphrase'

function client() {
  return createClient(HEARTH_URL, ANON_KEY, {
    // Node 20 has no global WebSocket: the realtime client needs ws passed in, or it refuses to start.
    realtime: { transport: ws },
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  })
}

function check(condition, message) {
  if (!condition) throw new Error(message)
}

function ok(result, what) {
  if (result.error) throw new Error(`${what}: ${result.error.name} ${result.error.status} ${result.error.code} ${result.error.message}`)
  return result.data
}

async function mailedToken(address, seen) {
  // The newest .eml to `address` that has not been used yet; the worker writes it within seconds.
  for (let i = 0; i < 150; i++) {
    const files = fs.existsSync(OUTBOX_DIR) ? fs.readdirSync(OUTBOX_DIR).filter((f) => f.endsWith('.eml')).sort() : []
    for (const file of files.reverse()) {
      if (seen.has(file)) continue
      const text = fs.readFileSync(path.join(OUTBOX_DIR, file), 'utf8')
      if (!text.toLowerCase().includes(`to: ${address}`)) continue
      const line = text.split(/\r?\n/).find((l) => l.startsWith('token='))
      if (line) {
        seen.add(file)
        return line.slice('token='.length).trim()
      }
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`no mail with a token to ${address}`)
}

async function step(name, fn) {
  try {
    await fn()
    console.log(`ok   ${name}`)
  } catch (error) {
    console.log(`FAIL ${name}: ${error.stack || error}`)
    process.exit(1)
  }
}

const seen = new Set()
const supabase = client()
let refreshed = null
supabase.auth.onAuthStateChange((event, session) => {
  if (event === 'TOKEN_REFRESHED') refreshed = session
})

await step('signUp answers a user without a session (confirmation on)', async () => {
  const data = ok(await supabase.auth.signUp({ email: EMAIL, password: PASSWORD, options: { data: { full_name: 'Js Person' } } }), 'signUp')
  check(data.user && data.user.email === EMAIL, 'signUp user')
  check(data.session === null, 'signUp must not sign in before confirmation')
})

await step('signInWithPassword before confirmation is invalid_credentials', async () => {
  const { error } = await supabase.auth.signInWithPassword({ email: EMAIL, password: PASSWORD })
  check(error instanceof AuthApiError && error.code === 'invalid_credentials', `got ${error && error.code}`)
})

await step('verifyOtp with the mailed token confirms the address and signs in', async () => {
  const token = await mailedToken(EMAIL, seen)
  const data = ok(await supabase.auth.verifyOtp({ token_hash: token, type: 'email' }), 'verifyOtp')
  check(data.session && data.user.email_confirmed_at, 'verifyOtp session')
  ok(await supabase.auth.signOut({ scope: 'local' }), 'signOut after verify')
})

await step('signInWithPassword', async () => {
  const data = ok(await supabase.auth.signInWithPassword({ email: EMAIL, password: PASSWORD }), 'signIn')
  check(data.session.token_type === 'bearer' && data.session.refresh_token, 'session shape')
  check(data.user.user_metadata.full_name === 'Js Person', 'user_metadata from signUp data')
})

await step('getUser', async () => {
  const data = ok(await supabase.auth.getUser(), 'getUser')
  check(data.user.email === EMAIL && data.user.aud === 'authenticated', 'getUser user')
  check(data.user.identities.length === 1 && data.user.identities[0].provider === 'email', 'identities')
})

await step('updateUser(data)', async () => {
  const data = ok(await supabase.auth.updateUser({ data: { theme: 'dark' } }), 'updateUser')
  check(data.user.user_metadata.theme === 'dark', 'metadata updated')
})

await step('refreshSession fires TOKEN_REFRESHED with a new session', async () => {
  const before = ok(await supabase.auth.getSession(), 'getSession').session
  const data = ok(await supabase.auth.refreshSession(), 'refreshSession')
  check(data.session.refresh_token !== before.refresh_token, 'refresh token rotated')
  check(refreshed && refreshed.access_token === data.session.access_token, 'TOKEN_REFRESHED event')
})

await step('getClaims verifies the ES256 token against the JWKS', async () => {
  const data = ok(await supabase.auth.getClaims(), 'getClaims')
  check(data.header.alg === 'ES256', `alg ${data.header.alg}`)
  check(data.claims.email === EMAIL && data.claims.role === 'authenticated' && data.claims.aal === 'aal1', 'claims')
  check(Array.isArray(data.claims.amr) && data.claims.session_id, 'amr and session_id')
})

await step('signOut local ends this session only', async () => {
  const other = client()
  ok(await other.auth.signInWithPassword({ email: EMAIL, password: PASSWORD }), 'second sign-in')
  const token = ok(await supabase.auth.getSession(), 'getSession').session.access_token
  ok(await supabase.auth.signOut({ scope: 'local' }), 'signOut local')
  const { error } = await supabase.auth.getUser(token)
  check(error, 'the signed-out token must be refused')
  ok(await other.auth.getUser(), 'the other session goes on')
})

await step('signOut global ends every session', async () => {
  const a = client()
  const b = client()
  ok(await a.auth.signInWithPassword({ email: EMAIL, password: PASSWORD }), 'a signs in')
  ok(await b.auth.signInWithPassword({ email: EMAIL, password: PASSWORD }), 'b signs in')
  const bToken = ok(await b.auth.getSession(), 'b session').session.access_token
  ok(await a.auth.signOut({ scope: 'global' }), 'signOut global')
  const { error } = await b.auth.getUser(bToken)
  check(error, 'b must be signed out too')
})

await step('resetPasswordForEmail → verifyOtp(recovery) → updateUser(password)', async () => {
  const c = client()
  ok(await c.auth.resetPasswordForEmail(EMAIL, { redirectTo: 'http://hearth.test/reset' }), 'resetPasswordForEmail')
  const token = await mailedToken(EMAIL, seen)
  ok(await c.auth.verifyOtp({ email: EMAIL, token, type: 'recovery' }), 'verifyOtp recovery')
  ok(await c.auth.updateUser({ password: NEW_PASSWORD }), 'updateUser password')
  ok(await client().auth.signInWithPassword({ email: EMAIL, password: NEW_PASSWORD }), 'sign in with the new password')
})

await step('a wrong password is an AuthApiError with code invalid_credentials', async () => {
  const { error } = await client().auth.signInWithPassword({ email: EMAIL, password: PASSWORD })
  check(error instanceof AuthApiError, `not an AuthApiError: ${error && error.name}`)
  check(error.code === 'invalid_credentials' && error.status === 400, `code ${error.code} status ${error.status}`)
})

await step('an imported user with a bcrypt $2a$ hash signs in with the old password', async () => {
  const data = ok(await client().auth.signInWithPassword({ email: IMPORTED_EMAIL, password: IMPORTED_PASSWORD }), 'imported sign-in')
  const providers = data.user.identities.map((i) => i.provider)
  check(providers.includes('email') && providers.includes('google'), `identities ${providers}`)
  check(data.user.app_metadata.providers.includes('google'), 'app_metadata.providers')
})

console.log('all steps passed')
process.exit(0)
