-- gust.queues: Tornado's queues for tasks on the loop -- Queue (FIFO),
-- LifoQueue and PriorityQueue -- over the waiter machinery of gust.locks,
-- so locks.cancel(co, err) also ends a task's wait in put, get or join.
--
--   local q = queues.Queue(maxsize)        -- 0 (default): unbounded
--   q:put(item, timeout?)   -> true | nil, "timeout"   (yields while full)
--   q:get(timeout?)         -> item | nil, "timeout"   (yields while empty)
--   q:put_nowait(item)      -> true | nil, "full"
--   q:get_nowait()          -> item | nil, "empty"
--   q:qsize(), q:empty(), q:full(), q:maxsize()
--   q:task_done(); q:join(timeout?) -> true | nil, "timeout"
--
-- Items may be any value but nil (false is fine): since an item is never
-- nil, `local item, err = q:get()` failed exactly when item == nil. Putting
-- nil is an error.
--
-- As in Tornado, a put that finds a getter waiting hands the item straight
-- to it, and a get that finds a putter waiting takes that putter's item
-- into the queue; both happen when the call is made, so a waiter cancelled
-- after being served keeps what it was given, and one cancelled or timed
-- out before is skipped (a putter's item is then dropped, not queued).
--
-- Subclasses (gust.class.extend) override the storage: _init(...) (the
-- constructor's arguments after maxsize), _put(item), _get(), _qsize().

local _M = { _VERSION = "0.1.0" }

local type, error, tostring = type, error, tostring
local setmetatable = setmetatable
local format = string.format

local class = require "gust.class"
local locks = require "gust.locks"

local internal = locks._internal
local list_new, list_pop, list_len = internal.list_new, internal.list_pop, internal.list_len
local settle, wait = internal.settle, internal.wait
local check_timeout, current_task = internal.check_timeout, internal.current_task
local Event = locks.Event

------------------------------------------------------------------------------
-- Queue (FIFO)

local Queue = { __name = "gust.queues.Queue" }
Queue.__index = Queue

function Queue.__tostring(self)
  return format("<%s maxsize=%d qsize=%d getters=%d putters=%d tasks=%d>",
                self.__name, self._maxsize, self:_qsize(), list_len(self._getters),
                list_len(self._putters), self._unfinished)
end

setmetatable(Queue, {
  __call = function(cls, maxsize, ...)
    if maxsize == nil then
      maxsize = 0
    elseif type(maxsize) ~= "number" or maxsize < 0 or maxsize % 1 ~= 0 then
      error(format("bad argument #1 to '%s' (maxsize must be an integer >= 0, got %s)",
                   cls.__name, tostring(maxsize)), 2)
    end
    local finished = Event()
    finished:set()
    local q = setmetatable({
      _maxsize = maxsize,
      _getters = list_new(),
      _putters = list_new(),
      _unfinished = 0,
      _finished = finished,
    }, cls)
    q:_init(...)
    return q
  end,
})

-- Storage: a ring of items[head .. tail].
function Queue:_init()
  self._items, self._head, self._tail = {}, 1, 0
end

function Queue:_put(item)
  local tail = self._tail + 1
  self._tail = tail
  self._items[tail] = item
end

function Queue:_get()
  local head, items = self._head, self._items
  local item = items[head]
  items[head] = nil
  if head >= self._tail then
    self._head, self._tail = 1, 0
  else
    self._head = head + 1
  end
  return item
end

function Queue:_qsize()
  return self._tail - self._head + 1
end

local function put_internal(self, item)
  self._unfinished = self._unfinished + 1
  self._finished:clear()
  self:_put(item)
end

local function check_item(item, fname)
  if item == nil then
    error(format("bad argument #1 to '%s' (queue items cannot be nil)", fname), 3)
  end
end

-- put, once the arguments are checked.
local function put_nowait(self, item)
  local getter = list_pop(self._getters)
  if getter then
    -- A live getter means the queue is empty: it gets this very item.
    put_internal(self, item)
    settle(getter, self:_get())
    return true
  end
  if self:full() then return nil, "full" end
  put_internal(self, item)
  return true
end

-- Queue:put_nowait(item) -> true | nil, "full".
function Queue:put_nowait(item)
  check_item(item, "put_nowait")
  return put_nowait(self, item)
end

-- Queue:put(item, timeout?) -> true | nil, "timeout". Yields while full.
function Queue:put(item, timeout)
  check_item(item, "put")
  timeout = check_timeout(timeout, "put", 2)
  local co = current_task("put")
  if put_nowait(self, item) then return true end
  return wait(self._putters, { item = item }, co, timeout)
end

-- Queue:get_nowait() -> item | nil, "empty".
function Queue:get_nowait()
  local putter = list_pop(self._putters)
  if putter then
    -- A live putter means the queue is full: its item goes in now.
    local item = putter.item
    putter.item = nil
    put_internal(self, item)
    settle(putter, true)
    return self:_get()
  end
  if self:_qsize() > 0 then
    return self:_get()
  end
  return nil, "empty"
end

-- Queue:get(timeout?) -> item | nil, "timeout". Yields while empty.
function Queue:get(timeout)
  timeout = check_timeout(timeout, "get", 1)
  local co = current_task("get")
  local item = self:get_nowait()
  if item ~= nil then return item end
  return wait(self._getters, {}, co, timeout)
end

function Queue:qsize()
  return self:_qsize()
end

function Queue:empty()
  return self:_qsize() == 0
end

function Queue:full()
  local maxsize = self._maxsize
  return maxsize > 0 and self:_qsize() >= maxsize
end

function Queue:maxsize()
  return self._maxsize
end

-- Marks one item taken with get() as processed, for join().
function Queue:task_done()
  local n = self._unfinished
  if n <= 0 then
    error("task_done() called too many times", 2)
  end
  n = n - 1
  self._unfinished = n
  if n == 0 then self._finished:set() end
end

-- Queue:join(timeout?) -> true | nil, "timeout": waits until every item
-- put has been marked with task_done().
function Queue:join(timeout)
  timeout = check_timeout(timeout, "join", 1)
  current_task("join")
  return self._finished:wait(timeout)
end

_M.Queue = Queue

------------------------------------------------------------------------------
-- LifoQueue: the most recently put item comes out first.

local LifoQueue = class.extend(Queue, { __name = "gust.queues.LifoQueue" })

function LifoQueue:_init()
  self._items, self._n = {}, 0
end

function LifoQueue:_put(item)
  local n = self._n + 1
  self._n = n
  self._items[n] = item
end

function LifoQueue:_get()
  local n = self._n
  local item = self._items[n]
  self._items[n] = nil
  self._n = n - 1
  return item
end

function LifoQueue:_qsize()
  return self._n
end

_M.LifoQueue = LifoQueue

------------------------------------------------------------------------------
-- PriorityQueue(maxsize?, less?): the smallest item comes out first, by
-- less(a, b) (default a < b); equal items come out in the order they were
-- put. A binary heap; the comparator must not yield.
--
--   local q = queues.PriorityQueue(0, function(a, b) return a[1] < b[1] end)
--   q:put({1, "high"}); q:put({10, "low"})

local PriorityQueue = class.extend(Queue, { __name = "gust.queues.PriorityQueue" })

local function default_less(a, b)
  return a < b
end

function PriorityQueue:_init(less)
  if less ~= nil and type(less) ~= "function" then
    error(format("bad argument #2 to '%s' (function expected, got %s)",
                 self.__name, type(less)), 3)
  end
  self._less = less or default_less
  self._items, self._seqs, self._n, self._seq = {}, {}, 0, 0
end

-- true when heap slot i must come out before slot j.
local function before(items, seqs, less, i, j)
  local a, b = items[i], items[j]
  if less(a, b) then return true end
  if less(b, a) then return false end
  return seqs[i] < seqs[j]
end

function PriorityQueue:_put(item)
  local items, seqs, less = self._items, self._seqs, self._less
  local seq = self._seq + 1
  self._seq = seq
  local i = self._n + 1
  self._n = i
  items[i], seqs[i] = item, seq
  while i > 1 do
    local parent = (i - i % 2) / 2
    if not before(items, seqs, less, i, parent) then break end
    items[i], items[parent] = items[parent], items[i]
    seqs[i], seqs[parent] = seqs[parent], seqs[i]
    i = parent
  end
end

function PriorityQueue:_get()
  local items, seqs, less = self._items, self._seqs, self._less
  local n = self._n
  local top = items[1]
  items[1], seqs[1] = items[n], seqs[n]
  items[n], seqs[n] = nil, nil
  n = n - 1
  self._n = n
  if n == 0 then self._seq = 0 end
  local i = 1
  while true do
    local child = 2 * i
    if child > n then break end
    if child < n and before(items, seqs, less, child + 1, child) then
      child = child + 1
    end
    if not before(items, seqs, less, child, i) then break end
    items[i], items[child] = items[child], items[i]
    seqs[i], seqs[child] = seqs[child], seqs[i]
    i = child
  end
  return top
end

function PriorityQueue:_qsize()
  return self._n
end

_M.PriorityQueue = PriorityQueue

return _M
