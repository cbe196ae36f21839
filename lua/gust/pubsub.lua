-- gust.pubsub: channels across the connections of a worker and across the
-- workers of a server (DESIGN §4.9). A message published in one worker is
-- fanned out to its own subscribers here and sent once to the master, which
-- relays it to the other workers' pubsub modules and, with --redis, to the
-- other servers (src/proc/redis_relay.c).
--
--   local sub = pubsub.subscribe("room", function(message, channel) ... end)
--   pubsub.publish("room", "hello")      -- returns at once
--   sub:cancel()
local core = require "gust.core"

local error = error
local setmetatable = setmetatable
local type = type
local spawn = core.spawn

local _M = { _VERSION = "0.1.0" }

local channels = {} -- channel -> array of live subscriptions, in order

local Subscription = { __name = "gust.pubsub.Subscription" }
Subscription.__index = Subscription

-- Each message runs each subscriber as a task of its own, so a subscriber
-- that waits (writes to a slow socket) never holds up the others.
local function deliver(channel, message)
  local subs = channels[channel]
  if subs == nil then return end
  for i = 1, #subs do
    spawn(subs[i].fn, message, channel)
  end
end

core.set_bus_handler(deliver)

function _M.subscribe(channel, fn)
  if type(channel) ~= "string" then
    error("bad argument #1 to 'subscribe' (string expected, got " .. type(channel) .. ")", 2)
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to 'subscribe' (function expected, got " .. type(fn) .. ")", 2)
  end
  local sub = setmetatable({ channel = channel, fn = fn }, Subscription)
  local subs = channels[channel]
  if subs == nil then
    subs = {}
    channels[channel] = subs
  end
  subs[#subs + 1] = sub
  return sub
end

-- Stops deliveries to this subscription (idempotent).
function Subscription:cancel()
  local subs = channels[self.channel]
  if subs == nil then return end
  for i = #subs, 1, -1 do
    if subs[i] == self then table.remove(subs, i) break end
  end
  if #subs == 0 then channels[self.channel] = nil end
end

-- publish(channel, message) -> true | nil, err ("message too large" past
-- 64 KiB, or when the bus to the other workers is congested).
function _M.publish(channel, message)
  if type(channel) ~= "string" then
    error("bad argument #1 to 'publish' (string expected, got " .. type(channel) .. ")", 2)
  end
  if type(message) ~= "string" then
    error("bad argument #2 to 'publish' (string expected, got " .. type(message) .. ")", 2)
  end
  local ok, err = core.bus_publish(channel, message)
  if not ok then return nil, err end
  deliver(channel, message)
  return true
end

-- The number of local subscriptions to a channel.
function _M.subscribers(channel)
  local subs = channels[channel]
  return subs and #subs or 0
end

return _M
