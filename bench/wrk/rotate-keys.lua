-- Loaded by bench/run.py with `wrk -s` for scenarios whose every request carries a
-- different credential (api-key-miss): `wrk ... URL -- KEYS_FILE START`.
-- KEYS_FILE has one API key a line; START (0-based) is where this run begins in the list,
-- so a run continues where the previous run against the same proxy stopped (a restart at
-- the first key would find the keys of the warm-up still in the gateway's cache).
-- init() builds every request string once (the -H headers plus "Authorization: Bearer
-- <key>"); request() only picks the next one: one table index and a counter per request.
-- done() is report.lua's (loaded from this file's directory). init() prints the CPU time
-- it took (BENCH_INIT_CPU_S), so the harness can leave it out of the load core's CPU.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local requests_ = {}
local count = 0
local index = 0

function init(args)
  local path = args[1]
  local start = tonumber(args[2] or "0") or 0
  -- One template with a placeholder, split once: building 200k strings is then a
  -- concatenation each (well under a second, before wrk's clock starts).
  local headers = {}
  for name, value in pairs(wrk.headers) do
    if string.lower(name) ~= "authorization" then headers[name] = value end
  end
  headers["Authorization"] = "Bearer \1"
  local template = wrk.format(nil, nil, headers)
  local prefix, suffix = template:match("^(.-)\1(.*)$")
  local file = assert(io.open(path, "r"))
  for key in file:lines() do
    if key ~= "" then
      count = count + 1
      requests_[count] = prefix .. key .. suffix
    end
  end
  file:close()
  assert(count > 0, "no keys in " .. path)
  index = start % count
  -- The CPU time wrk used until now (this set-up, before its clock starts): run.py takes
  -- it out of the load side's CPU for the run.
  io.write(string.format("BENCH_INIT_CPU_S %.6f\n", os.clock()))
end

function request()
  index = index + 1
  if index > count then index = 1 end
  return requests_[index]
end
