-- gust.locks: Tornado's coordination primitives for tasks on the loop --
-- Event, Condition, Lock, Semaphore and BoundedSemaphore -- plus the waiter
-- machinery gust.queues is built on.
--
-- Every blocking call takes an optional timeout in relative seconds (nil:
-- wait for ever) and returns true, or nil, "timeout". A wait may also end
-- early through cancel(co, err) -- a handler whose client went away
-- (DESIGN §4.5) -- and then returns nil, err.
--
-- How a wait works: the task files a small record in the primitive's FIFO
-- wait list and in the weak table `waiting`, arms a timer when it has a
-- timeout, and parks in a plain coroutine.yield(). Exactly one of notify,
-- timeout or cancel settles the record (the `done` flag), which removes it
-- from `waiting`, cancels its timer and wakes the task once through
-- core.wake(co, rec). The task only leaves its yield when handed its own
-- record back, so a stray resume cannot end a wait early.
--
-- Records settled by a timeout or a cancel stay in their list and are
-- skipped (and counted as dead) when the list is popped, as Tornado's
-- _garbage_collect does; a list that is mostly dead is compacted. A notify
-- therefore only ever counts live waiters. What a waiter is handed (a lock,
-- a queue item) is decided when it is settled, not when it resumes, so a
-- cancel that comes after a notify changes nothing and nothing is lost.
--
-- Waiting is for tasks: coroutines the core runs (gust.spawn, handlers,
-- timer callbacks). Calling a blocking method from the main thread is an
-- error; from a coroutine you resume yourself, it would yield to you.

local _M = { _VERSION = "0.1.0" }

local type, error, tostring = type, error, tostring
local setmetatable = setmetatable
local format = string.format
local huge = math.huge
local running, yield = coroutine.running, coroutine.yield

local core = require "gust.core"
local class = require "gust.class"

local call_later, wake = core.call_later, core.wake

------------------------------------------------------------------------------
-- Waiter machinery (shared with gust.queues through _M._internal).

-- waiting[co] = the record of the wait co is parked in.
-- Weak both ways: a record holds its coroutine, and weak keys alone are
-- not ephemerons in LuaJIT, so the entry would pin a task nobody can wake.
local waiting = setmetatable({}, { __mode = "kv" })

-- A wait list is a FIFO of records in list[first .. last]; `dead` counts
-- the records in it that a timeout or cancel has already settled.
local function list_new()
  return { first = 1, last = 0, dead = 0 }
end

local function list_push(list, rec)
  local last = list.last + 1
  list.last = last
  list[last] = rec
end

-- Removes and returns the oldest record still waiting, or nil.
local function list_pop(list)
  local first, last = list.first, list.last
  while first <= last do
    local rec = list[first]
    list[first] = nil
    first = first + 1
    if not rec.done then
      if first > last then
        list.first, list.last = 1, 0
      else
        list.first = first
      end
      return rec
    end
    list.dead = list.dead - 1
  end
  list.first, list.last, list.dead = 1, 0, 0
  return nil
end

-- How many records in the list are still waiting.
local function list_len(list)
  return list.last - list.first + 1 - list.dead
end

-- Drops settled records, keeping the order of the others.
local function list_compact(list)
  local j = list.first - 1
  for i = list.first, list.last do
    local rec = list[i]
    list[i] = nil
    if not rec.done then
      j = j + 1
      list[j] = rec
    end
  end
  list.last = j
  list.dead = 0
  if j < list.first then list.first, list.last = 1, 0 end
end

-- Ends a wait with its outcome and wakes the task (once: callers check
-- rec.done first, or took rec from list_pop, which only returns live ones).
local function settle(rec, value, err)
  rec.done = true
  rec.value, rec.err = value, err
  local co = rec.co
  if waiting[co] == rec then waiting[co] = nil end
  local timer = rec.timer
  if timer then
    rec.timer = nil
    timer:cancel()
  end
  wake(co, rec)
end

-- Ends a wait that is still in its list (timeout, cancel). false if the
-- record was already settled.
local function abort(rec, err)
  if rec.done then return false end
  settle(rec, nil, err)
  local list = rec.list
  local dead = list.dead + 1
  list.dead = dead
  if dead >= 16 and dead * 2 >= list.last - list.first + 1 then
    list_compact(list)
  end
  return true
end

-- The timer callback of a wait with a timeout (one function for all waits).
local function expire(rec)
  rec.timer = nil -- it has fired: nothing to cancel
  abort(rec, "timeout")
end

-- Validates a timeout argument: nil, or a number of seconds (negative
-- means "already expired", as a deadline in the past does in Tornado).
local function check_timeout(timeout, fname, argn)
  if timeout == nil then return nil end
  if type(timeout) ~= "number" or timeout ~= timeout then
    error(format("bad argument #%d to '%s' (number of seconds expected, got %s)",
                 argn, fname, timeout ~= timeout and "nan" or type(timeout)), 3)
  end
  if timeout < 0 then return 0 end
  if timeout == huge then return nil end
  return timeout
end

-- The running task, or an error (pointing at the caller's caller) outside one.
local function current_task(fname)
  local co, main = running()
  if co == nil or main then
    error(format("'%s' must be called from a task (it may yield)", fname), 3)
  end
  return co
end

-- Parks task `co` in `list` with record `rec` until it is settled.
-- Returns rec.value, or nil, rec.err.
local function wait(list, rec, co, timeout)
  rec.co = co
  rec.list = list
  list_push(list, rec)
  waiting[co] = rec
  if timeout then
    rec.timer = call_later(timeout, expire, rec)
  end
  repeat until yield() == rec
  local err = rec.err
  if err ~= nil then return nil, err end
  return rec.value
end

_M._internal = {
  list_new = list_new, list_pop = list_pop, list_len = list_len,
  settle = settle, wait = wait,
  check_timeout = check_timeout, current_task = current_task,
}

-- locks.cancel(co, err?) -> boolean. If task `co` is waiting in any gust.locks
-- or gust.queues primitive, ends that wait: it returns nil, err (default
-- "closed"), its timer is cancelled and it no longer counts as a waiter.
-- false when co is not waiting (or has already been handed its result).
function _M.cancel(co, err)
  if type(co) ~= "thread" then
    error("bad argument #1 to 'cancel' (coroutine expected, got " .. type(co) .. ")", 2)
  end
  local rec = waiting[co]
  if rec == nil then return false end
  if err == nil then err = "closed" end
  return abort(rec, err)
end

-- locks.waiting(co) -> true while task co is parked in one of these primitives.
function _M.waiting(co)
  return waiting[co] ~= nil
end

------------------------------------------------------------------------------
-- Shared helpers for the classes.

local function callable(cls, ctor)
  return setmetatable(cls, { __call = ctor })
end

local function check_count(v, default, fname, what)
  if v == nil then return default end
  if type(v) ~= "number" or v < 0 or v % 1 ~= 0 then
    error(format("bad argument #1 to '%s' (%s must be an integer >= 0, got %s)",
                 fname, what, tostring(v)), 3)
  end
  return v
end

------------------------------------------------------------------------------
-- Event: a flag; wait() blocks until it is set.

local Event = { __name = "gust.locks.Event" }
Event.__index = Event

function Event.__tostring(self)
  return format("<gust.locks.Event %s>", self._value and "set" or "clear")
end

callable(Event, function(cls)
  return setmetatable({ _value = false, _waiters = list_new() }, cls)
end)

function Event:is_set()
  return self._value
end

-- Sets the flag and wakes every waiter.
function Event:set()
  if self._value then return end
  self._value = true
  local waiters = self._waiters
  local rec = list_pop(waiters)
  while rec do
    settle(rec, true)
    rec = list_pop(waiters)
  end
end

function Event:clear()
  self._value = false
end

-- Event:wait(timeout?) -> true | nil, "timeout". At once when set.
function Event:wait(timeout)
  timeout = check_timeout(timeout, "wait", 1)
  local co = current_task("wait")
  if self._value then return true end
  return wait(self._waiters, {}, co, timeout)
end

_M.Event = Event

------------------------------------------------------------------------------
-- Condition: tasks wait until notified (no predicate, no lock: one thread).

local Condition = { __name = "gust.locks.Condition" }
Condition.__index = Condition

function Condition.__tostring(self)
  return format("<gust.locks.Condition waiters=%d>", list_len(self._waiters))
end

callable(Condition, function(cls)
  return setmetatable({ _waiters = list_new() }, cls)
end)

-- Condition:wait(timeout?) -> true once notified | nil, "timeout".
function Condition:wait(timeout)
  timeout = check_timeout(timeout, "wait", 1)
  local co = current_task("wait")
  return wait(self._waiters, {}, co, timeout)
end

local function notify(waiters, n)
  local woken = 0
  while woken < n do
    local rec = list_pop(waiters)
    if rec == nil then break end
    settle(rec, true)
    woken = woken + 1
  end
  return woken
end

-- Condition:notify(n?) -> number woken. Wakes the n (default 1) oldest live
-- waiters; waiters that timed out or were cancelled are not counted.
function Condition:notify(n)
  n = check_count(n, 1, "notify", "n")
  return notify(self._waiters, n)
end

-- Condition:notify_all() -> number woken.
function Condition:notify_all()
  return notify(self._waiters, huge)
end

_M.Condition = Condition

------------------------------------------------------------------------------
-- Semaphore: a counter; acquire() blocks at zero. Waiters are served FIFO:
-- release() hands the unit straight to the oldest live waiter.

local Semaphore = { __name = "gust.locks.Semaphore" }
Semaphore.__index = Semaphore

function Semaphore.__tostring(self)
  return format("<%s value=%d waiters=%d>", self.__name, self._value,
                list_len(self._waiters))
end

callable(Semaphore, function(cls, value)
  value = check_count(value, 1, cls.__name, "value")
  return setmetatable({ _value = value, _initial = value, _waiters = list_new() }, cls)
end)

-- Semaphore:acquire(timeout?) -> true | nil, "timeout".
function Semaphore:acquire(timeout)
  timeout = check_timeout(timeout, "acquire", 1)
  local co = current_task("acquire")
  local value = self._value
  if value > 0 then
    self._value = value - 1
    return true
  end
  return wait(self._waiters, {}, co, timeout)
end

function Semaphore:release()
  local rec = list_pop(self._waiters)
  if rec then
    settle(rec, true)
  else
    self._value = self._value + 1
  end
end

-- The units available now.
function Semaphore:value()
  return self._value
end

_M.Semaphore = Semaphore

-- BoundedSemaphore: release() above the initial value is an error.
local BoundedSemaphore = class.extend(Semaphore, { __name = "gust.locks.BoundedSemaphore" })

function BoundedSemaphore:release()
  if self._value >= self._initial then
    error("semaphore released too many times", 2)
  end
  return Semaphore.release(self)
end

_M.BoundedSemaphore = BoundedSemaphore

------------------------------------------------------------------------------
-- Lock: a fair (FIFO) mutex. Not owned by a task: any task may release it,
-- as in Tornado. It is not reentrant.

local Lock = { __name = "gust.locks.Lock" }
Lock.__index = Lock

function Lock.__tostring(self)
  return format("<gust.locks.Lock %s waiters=%d>",
                self._locked and "locked" or "unlocked", list_len(self._waiters))
end

callable(Lock, function(cls)
  return setmetatable({ _locked = false, _waiters = list_new() }, cls)
end)

-- Lock:acquire(timeout?) -> true | nil, "timeout".
function Lock:acquire(timeout)
  timeout = check_timeout(timeout, "acquire", 1)
  local co = current_task("acquire")
  if not self._locked then
    self._locked = true
    return true
  end
  return wait(self._waiters, {}, co, timeout)
end

-- Releases the lock, handing it to the oldest live waiter if there is one.
function Lock:release()
  if not self._locked then
    error("release unlocked lock", 2)
  end
  local rec = list_pop(self._waiters)
  if rec then
    settle(rec, true) -- stays locked: it is the waiter's now
  else
    self._locked = false
  end
end

function Lock:locked()
  return self._locked
end

_M.Lock = Lock

return _M
