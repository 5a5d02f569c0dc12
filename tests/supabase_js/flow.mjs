// The real supabase-js auth client against a live Hearth: every call a migrating frontend makes.
// Run by tests/integration/test_supabase_js_live.py with HEARTH_URL, ANON_KEY, OUTBOX_DIR,
// IMPORTED_EMAIL and IMPORTED_PASSWORD set. Prints one line per step; exits 1 at the first failure.
import { createClient, AuthApiError } from '@supabase/supabase-js'
import crypto from 'node:crypto'
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

// RFC 6238 (TOTP: HMAC-SHA1, 30-second steps, six digits) from the base32 secret mfa.enroll returns.
function totp(secret, stepOffset = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = ''
  for (const char of secret.replace(/=+$/, '').toUpperCase()) {
    const value = alphabet.indexOf(char)
    if (value < 0) throw new Error('not base32')
    bits += value.toString(2).padStart(5, '0')
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((byte) => parseInt(byte, 2)))
  const counter = Buffer.alloc(8)
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + stepOffset))
  const mac = crypto.createHmac('sha1', key).update(counter).digest()
  const offset = mac[mac.length - 1] & 0x0f
  const number = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000
  return String(number).padStart(6, '0')
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

// Two-factor login with supabase-js's mfa.* calls, on the account above (its password is NEW_PASSWORD now).
const mfaClient = client()
let factorId = null
let secret = null

await step('mfa.enroll answers a TOTP secret, its otpauth URI and an SVG QR code', async () => {
  ok(await mfaClient.auth.signInWithPassword({ email: EMAIL, password: NEW_PASSWORD }), 'sign in')
  const data = ok(await mfaClient.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'Phone' }), 'enroll')
  check(data.type === 'totp' && data.friendly_name === 'Phone' && data.id, 'enroll shape')
  check(data.totp.qr_code.startsWith('data:image/svg+xml;utf-8,<svg'), 'qr_code as an SVG data URI')
  check(data.totp.uri.startsWith('otpauth://totp/') && data.totp.secret, 'uri and secret')
  factorId = data.id
  secret = data.totp.secret
})

await step('mfa.challenge + mfa.verify (a code computed here) raise the session to aal2', async () => {
  const challenge = ok(await mfaClient.auth.mfa.challenge({ factorId }), 'challenge')
  check(challenge.id && challenge.type === 'totp' && challenge.expires_at > Date.now() / 1000, 'challenge shape')
  const data = ok(await mfaClient.auth.mfa.verify({ factorId, challengeId: challenge.id, code: totp(secret) }), 'verify')
  check(data.access_token && data.refresh_token && data.user.id, 'verify answers a session')
  const level = ok(await mfaClient.auth.mfa.getAuthenticatorAssuranceLevel(), 'getAuthenticatorAssuranceLevel')
  check(level.currentLevel === 'aal2' && level.nextLevel === 'aal2', `levels ${level.currentLevel} ${level.nextLevel}`)
  check(level.currentAuthenticationMethods.some((m) => m.method === 'totp'), 'amr has totp')
})

await step('mfa.listFactors shows the factor verified', async () => {
  const data = ok(await mfaClient.auth.mfa.listFactors(), 'listFactors')
  check(data.totp.length === 1 && data.totp[0].id === factorId && data.totp[0].status === 'verified', 'verified totp')
  check(data.all.length === 1, 'one factor in all')
})

await step('a fresh signInWithPassword is aal1 with nextLevel aal2, and opens nothing else', async () => {
  const fresh = client()
  ok(await fresh.auth.signInWithPassword({ email: EMAIL, password: NEW_PASSWORD }), 'sign in')
  const level = ok(await fresh.auth.mfa.getAuthenticatorAssuranceLevel(), 'levels')
  check(level.currentLevel === 'aal1' && level.nextLevel === 'aal2', `levels ${level.currentLevel} ${level.nextLevel}`)
  const { error } = await fresh.auth.updateUser({ data: { theme: 'light' } })
  check(error instanceof AuthApiError && error.code === 'insufficient_aal', `updateUser at aal1: ${error && error.code}`)
  const token = ok(await fresh.auth.getSession(), 'session').session.access_token
  const me = await fetch(`${HEARTH_URL}/v1/me`, { headers: { authorization: `Bearer ${token}` } })
  check(me.status === 403 && (await me.json()).type.endsWith('/mfa-required'), `/v1/me at aal1: ${me.status}`)
  // The next step's code: this step's was used by the verify above, and a code is good once.
  ok(await fresh.auth.mfa.challengeAndVerify({ factorId, code: totp(secret, 1) }), 'challengeAndVerify')
  const raised = ok(await fresh.auth.mfa.getAuthenticatorAssuranceLevel(), 'levels after')
  check(raised.currentLevel === 'aal2', `after challengeAndVerify ${raised.currentLevel}`)
  const after = ok(await fresh.auth.getSession(), 'session').session.access_token
  const meAfter = await fetch(`${HEARTH_URL}/v1/me`, { headers: { authorization: `Bearer ${after}` } })
  check(meAfter.status === 200, `/v1/me at aal2: ${meAfter.status}`)
  ok(await fresh.auth.mfa.unenroll({ factorId }), 'unenroll')
  const data = ok(await fresh.auth.mfa.listFactors(), 'listFactors after unenroll')
  check(data.all.length === 0, 'no factor left')
})

console.log('all steps passed')
process.exit(0)
