-- Loaded by bench/run.py with `wrk -s` to load the gateway's token endpoint itself:
-- `wrk ... http://127.0.0.1:PORT/oauth/token -- BODY`. Every request is the same
-- POST (form-encoded BODY, e.g. grant_type=client_credentials&scope=read%3Adatabases); the
-- client authentication (client_secret_basic) comes as a -H Authorization header. Only
-- wrk.method/wrk.body/wrk.headers are set, so wrk builds the request once and its
-- per-request path stays as for GETs. done() is report.lua's (loaded from this directory).

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

init = function(args)
  if #args < 1 then
    error("token-post.lua: the form body is the first script argument")
  end
  wrk.method = "POST"
  wrk.body = args[1]
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
