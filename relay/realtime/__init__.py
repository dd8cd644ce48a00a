"""The OpenAI Realtime API relay: a WebSocket session per client, passed through to an upstream, billed per response.

`consumer` accepts and pumps the sockets, `upstream` opens the upstream side (OpenAI, Azure or the built-in demo),
`session` keeps the money straight, `events` reads the realtime event protocol (pure functions).
"""
