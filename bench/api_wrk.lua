-- wrk load for `bench/api.py --client wrk`: ConfigMap creates or gets, with
-- the bearer token from $CORRAL_BENCH_TOKEN (not on the command line, where
-- `ps` would show it).
--
--   wrk ... -s bench/api_wrk.lua URL -- create TAG
--   wrk ... -s bench/api_wrk.lua URL -- get TAG NAMES_FILE THREADS
--
-- create: POSTs to URL (a namespace's configmaps), each name unique in the
-- run: "cm-TAG-t<thread>-<counter>", the body shaped as configmap() in api.py.
-- get: GETs URL/<name> for the names in NAMES_FILE (one a line), each thread
-- starting at its own share of the list and wrapping round.
--
-- Every response is checked (201 for a create, 200 for a get) and done()
-- prints one line "WRK_SUMMARY {json}" that api.py parses; it fails the run
-- on any unexpected status or socket error rather than average it in.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_index", #threads)
end

local mode, expect, path, prefix
local names, next_name = {}, 1
local counter = 0
local data = string.rep("v", 64)

ok, bad, first_bad = 0, 0, ""

function init(args)
   -- args[0] is the URL, the script's own arguments follow it.
   mode = args[1]
   local tag = args[2]
   if mode ~= "create" and mode ~= "get" then
      error("api_wrk.lua: mode must be create or get, got " .. tostring(mode))
   end
   local token = os.getenv("CORRAL_BENCH_TOKEN")
   if token == nil or token == "" then
      error("api_wrk.lua: CORRAL_BENCH_TOKEN is not set")
   end
   wrk.headers["Authorization"] = "Bearer " .. token
   wrk.headers["Content-Type"] = "application/json"
   path = wrk.path
   if mode == "create" then
      expect = 201
      prefix = "cm-" .. tag .. "-t" .. thread_index .. "-"
   else
      expect = 200
      for line in io.lines(args[3]) do
         if line ~= "" then names[#names + 1] = line end
      end
      if #names == 0 then error("api_wrk.lua: no names in " .. args[3]) end
      local share = math.floor(#names / tonumber(args[4]))
      next_name = (thread_index - 1) * share + 1
   end
end

function request()
   if mode == "create" then
      counter = counter + 1
      local body = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"'
         .. prefix .. counter .. '"},"data":{"key":"' .. data .. '"}}'
      return wrk.format("POST", path, nil, body)
   end
   local name = names[next_name]
   next_name = next_name % #names + 1
   return wrk.format("GET", path .. "/" .. name)
end

function response(status, headers, body)
   if status == expect then
      ok = ok + 1
   else
      bad = bad + 1
      if first_bad == "" then first_bad = status .. " " .. string.sub(body or "", 1, 300) end
   end
end

local function json_string(s)
   return '"' .. s:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", string.byte(c))
   end) .. '"'
end

function done(summary, latency, requests)
   local ok_all, bad_all, first = 0, 0, ""
   for _, thread in ipairs(threads) do
      ok_all = ok_all + thread:get("ok")
      bad_all = bad_all + thread:get("bad")
      if first == "" then first = thread:get("first_bad") end
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_SUMMARY {"requests":%d,"duration_us":%d,"ok":%d,"unexpected":%d,'
         .. '"first_unexpected":%s,"errors":{"connect":%d,"read":%d,"write":%d,'
         .. '"status":%d,"timeout":%d},"latency_us":{"p50":%d,"p99":%d,"max":%d}}\n',
      summary.requests, summary.duration, ok_all, bad_all, json_string(first),
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
