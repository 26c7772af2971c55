-- wrk script: POST chat completions that are all different (a priced miss each time, also for
-- a group with the response cache on). Environment as the harness's chat.lua: BENCH_AUTH,
-- BENCH_MODEL. Each wrk thread numbers its requests after a random prefix, so no two requests
-- of a run, or of two runs, are the same.
local auth  = os.getenv("BENCH_AUTH") or "Bearer sk-bench"
local model = os.getenv("BENCH_MODEL") or "gpt-4o-mini"
local headers = {["Content-Type"] = "application/json", ["Authorization"] = auth}
local counter, prefix = 0, ""

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  prefix = string.format("%08x", math.random(0, 0x7fffffff))
end

function request()
  counter = counter + 1
  local body = '{"model":"' .. model .. '","messages":['
    .. '{"role":"system","content":"You are a helpful assistant."},'
    .. '{"role":"user","content":"Say hello in one short sentence, please. (' .. prefix .. '-'
    .. counter .. ')"}],"max_tokens":64,"temperature":0.2}'
  return wrk.format("POST", nil, headers, body)
end
