-- IOStream, TCPServer, tcpclient, netutil and IOLoop fd handlers over real
-- loopback sockets on the real loop.
local core = require "gust.core"
local ioloop = require "gust.ioloop"
local iostream = require "gust.iostream"
local netutil = require "gust.netutil"
local tcpclient = require "gust.tcpclient"
local tcpserver = require "gust.tcpserver"
local testing = require "gust.testing"

-- A server whose handle_stream is `fn`; returns its port and the server.
local function server(fn)
  local S = tcpserver.TCPServer:extend()
  S.handle_stream = function(_, stream, address) fn(stream, address) end
  local srv = S()
  return srv:listen(0, "127.0.0.1"), srv
end

describe("gust.iostream over TCPServer and tcpclient", function()
  it("echoes lines; read_until includes the delimiter", function()
    testing.run(function()
      local port, srv = server(function(stream)
        while true do
          local line = stream:read_until("\n")
          if not line then break end
          stream:write(line)
        end
      end)
      local c = assert(tcpclient.connect("127.0.0.1", port))
      c:write("one\ntwo\n")
      assert.equal("one\n", c:read_until("\n"))
      assert.equal("two\n", c:read_until("\n"))
      c:close()
      srv:stop()
    end)
  end)

  it("finds a delimiter split across writes", function()
    testing.run(function()
      local got
      local port, srv = server(function(stream) got = stream:read_until("\r\n\r\n") end)
      local c = assert(tcpclient.connect("127.0.0.1", port))
      c:write("abc\r")
      core.sleep(0.02)
      c:write("\n\r")
      core.sleep(0.02)
      c:write("\nrest")
      core.sleep(0.05)
      assert.equal("abc\r\n\r\n", got)
      c:close()
      srv:stop()
    end)
  end)

  it("reads exact byte counts, and partial reads return what is there", function()
    testing.run(function()
      local port, srv = server(function(stream)
        stream:write("0123456789")
        core.sleep(0.05)
        stream:close()
      end)
      local c = assert(tcpclient.connect("127.0.0.1", port))
      assert.equal("0123", c:read_bytes(4))
      assert.equal("456789", c:read_bytes(100, true))
      local data, err = c:read_bytes(1)
      assert.is_nil(data)
      assert.equal("closed", err)
      srv:stop()
    end)
  end)

  it("read_until_close returns everything up to EOF", function()
    testing.run(function()
      local port, srv = server(function(stream)
        for i = 1, 3 do stream:write("chunk" .. i) core.sleep(0.01) end
        stream:close()
      end)
      local c = assert(tcpclient.connect("127.0.0.1", port))
      assert.equal("chunk1chunk2chunk3", c:read_until_close())
      srv:stop()
    end)
  end)

  it("fails a read when the peer closes mid-read", function()
    testing.run(function()
      local port, srv = server(function(stream) stream:write("partial") stream:close() end)
      local c = assert(tcpclient.connect("127.0.0.1", port))
      local line, err = c:read_until("\n")
      assert.is_nil(line)
      assert.equal("closed", err)
      srv:stop()
    end)
  end)

  it("gives up on a delimiter not found within max_bytes", function()
    testing.run(function()
      local port, srv = server(function(stream) stream:write(("x"):rep(100)) core.sleep(0.2) end)
      local c = assert(tcpclient.connect("127.0.0.1", port))
      local line, err = c:read_until("\n", 50)
      assert.is_nil(line)
      assert.matches("max_bytes", err)
      c:close()
      srv:stop()
    end)
  end)

  it("closes when the read buffer passes max_buffer_size", function()
    testing.run(function()
      local port, srv = server(function(stream)
        for _ = 1, 64 do if not stream:write(("y"):rep(1024)) then break end end
        core.sleep(0.2)
        stream:close()
      end)
      local s = assert(tcpclient.connect("127.0.0.1", port))
      s:set_max_buffer_size(4096)
      local data, err = s:read_until("never")
      assert.is_nil(data)
      assert.equal("max_buffer_size exceeded", err)
      assert.is_true(s:closed())
      srv:stop()
    end)
  end)

  it("yields a writer above the high-water mark until the peer reads", function()
    testing.run(function()
      local reader
      local port, srv = server(function(stream) reader = stream core.sleep(10) end)
      local c = assert(tcpclient.connect("127.0.0.1", port))
      local big = ("z"):rep(1024 * 1024)
      local wrote_at
      core.spawn(function() core.sleep(0.2) assert(reader:read_bytes(4 * #big)) end)
      local t0 = core.now()
      for _ = 1, 4 do assert(c:write(big)) end
      wrote_at = core.now() - t0
      assert.is_true(wrote_at >= 0.15, "writes did not wait for the reader: " .. wrote_at)
      c:close()
      srv:stop()
    end, 10)
  end)

  it("calls the close callback when the peer goes away", function()
    testing.run(function()
      local closed = false
      local port, srv = server(function(stream)
        stream:set_close_callback(function() closed = true end)
      end)
      local c = assert(tcpclient.connect("127.0.0.1", port))
      core.sleep(0.02)
      c:close()
      core.sleep(0.05)
      assert.is_true(closed)
      srv:stop()
    end)
  end)

  it("reports a refused connection and an unknown host", function()
    testing.run(function()
      local sock = assert(netutil.bind_sockets(0, "127.0.0.1"))[1]
      local port = sock:getsockname()[2]
      sock:close()
      local s, err = tcpclient.connect("127.0.0.1", port)
      assert.is_nil(s)
      assert.equal("connection refused", err)
      s, err = tcpclient.connect("no-such-host.invalid", 80, {timeout = 5})
      assert.is_nil(s)
      assert.matches("^dns: no%-such%-host%.invalid", err)
    end, 10)
  end)

  it("adopts a pipe's two ends as streams (Tornado's PipeIOStream)", function()
    local ffi = require "ffi"
    pcall(ffi.cdef, "int pipe(int fds[2]); int fcntl(int fd, int cmd, ...);")
    local F_GETFL, O_NONBLOCK = 3, 2048
    local fds = ffi.new("int[2]")
    assert.equal(0, ffi.C.pipe(fds)) -- blocking, as pipe() makes them
    testing.run(function()
      local r = iostream.IOStream(fds[0])
      local w = iostream.IOStream(fds[1])
      for i = 0, 1 do -- made non-blocking: a full pipe must not hold the loop
        assert.is_true(bit.band(ffi.C.fcntl(fds[i], F_GETFL), O_NONBLOCK) ~= 0)
      end
      w:write("over a pipe\n")
      w:write(string.rep("x", 100000)) -- more than the pipe holds: queued
      assert.equal("over a pipe\n", r:read_until("\n"))
      assert.equal(100000, #r:read_bytes(100000))
      w:close()
      local data, err = r:read_bytes(1)
      assert.is_nil(data)
      assert.equal("closed", err)
      r:close()
    end)
  end)
end)

describe("gust.netutil and IOLoop.add_handler", function()
  it("runs Tornado's raw accept loop", function()
    testing.run(function()
      local loop = ioloop.current()
      local sock = assert(netutil.bind_sockets(0, "127.0.0.1"))[1]
      sock:setblocking(false)
      local accepted = {}
      loop:add_handler(sock:fileno(), function(_fd, events)
        assert.equal(ioloop.READ, events)
        while true do
          local conn, address = sock:accept()
          if not conn then
            assert.equal("EAGAIN", address)
            return
          end
          accepted[#accepted + 1] = address
          local msg, err = conn:recv(100)
          while not msg and err == "EAGAIN" do
            core.sleep(0.01)
            msg, err = conn:recv(100)
          end
          assert(msg, err)
          assert(conn:send("echo:" .. msg))
          conn:close()
        end
      end, ioloop.READ)
      local port = sock:getsockname()[2]
      local c = assert(tcpclient.connect("127.0.0.1", port))
      c:write("hi")
      assert.equal("echo:hi", c:read_until_close())
      assert.equal(1, #accepted)
      assert.equal("127.0.0.1", accepted[1][1])
      loop:remove_handler(sock:fileno())
      sock:close()
    end)
  end)

  it("is level-triggered and honours update_handler", function()
    testing.run(function()
      local loop = ioloop.current()
      local sock = assert(netutil.bind_sockets(0, "127.0.0.1"))[1]
      local c = assert(tcpclient.connect("127.0.0.1", sock:getsockname()[2]))
      core.sleep(0.02)
      local calls = 0
      -- Never accepting keeps the fd readable: the handler runs every turn.
      loop:add_handler(sock, function() calls = calls + 1 end, ioloop.READ)
      core.sleep(0.05)
      assert.is_true(calls >= 2, "called " .. calls)
      loop:update_handler(sock, 0)
      local seen = calls
      core.sleep(0.05)
      assert.equal(seen, calls)
      loop:remove_handler(sock)
      c:close()
      sock:close()
    end)
  end)

  it("returns nil, 'closed' from recv at end of stream", function()
    testing.run(function()
      local sock = assert(netutil.bind_sockets(0, "127.0.0.1"))[1]
      local c = assert(tcpclient.connect("127.0.0.1", sock:getsockname()[2]))
      core.sleep(0.02)
      local conn = assert(sock:accept())
      c:close()
      core.sleep(0.02)
      local data, err = conn:recv(10)
      assert.is_nil(data)
      assert.equal("closed", err)
      local n, e = conn:recv(10)
      assert.is_nil(n)
      assert.equal("closed", e)
      conn:close()
      sock:close()
    end)
  end)
end)
