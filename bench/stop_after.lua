-- wrk: the whole run ends after REQUESTS answers (bench/memory-vs-peers.sh
-- runs one thread), so a pool is measured after a count of requests, not a
-- time. wrk prints nothing then: its figures come from a timed run.
local limit = tonumber(os.getenv("REQUESTS") or "10000")
local answered = 0
function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("status " .. status .. "\n")
    os.exit(1)
  end
  answered = answered + 1
  if answered >= limit then os.exit(0) end
end
