-- wrk script: POST /score/salience with a body of N feature items.
--   wrk -s bench/lua/salience.lua http://HOST:PORT -- [items] [path]
-- items (default 1) and path (default /score/salience) come after `--`. The body is built
-- once per thread and the request pre-formatted, so wrk spends its time on the wire.
-- Values are deterministic, in [0, 1], so every request is valid (a non-2xx is an error).

local request_bytes

local function body_for(items)
  local parts = {}
  for i = 1, items do
    local risk = ((i * 37) % 101) / 100
    local severity = ((i * 53) % 97) / 96
    parts[i] = string.format('{"task_risk":%.4f,"failure_severity":%.4f}', risk, severity)
  end
  return '{"features":[' .. table.concat(parts, ",") .. "]}"
end

function init(args)
  local items = tonumber(args[1] or "1") or 1
  local path = args[2] or "/score/salience"
  request_bytes = wrk.format("POST", path, {["Content-Type"] = "application/json"}, body_for(items))
end

function request()
  return request_bytes
end
