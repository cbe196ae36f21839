-- gust.log: escaping request text for log lines, and the traceback handler
-- that escapes the message (against the fake core, which records lines).
local fake = require "fake_core"
local log = require "gust.log"

describe("gust.log", function()
  before_each(fake.clear_logs)

  it("writes control bytes and the backslash as \\xHH, the rest as it is", function()
    assert.equal("plain text, UTF-8 \195\169 too", log.escape("plain text, UTF-8 \195\169 too"))
    assert.equal("a\\x0a[error] forged", log.escape("a\n[error] forged"))
    assert.equal("\\x00\\x01\\x09\\x0d\\x0a\\x1b[31m\\x7f", log.escape("\0\1\t\r\n\27[31m\127"))
    assert.equal("C:\\x5cdir", log.escape("C:\\dir"))
    assert.equal("42", log.escape(42))
    assert.equal("nil", log.escape(nil))
  end)

  it("keeps a line one line", function()
    log.warn("got %s", log.escape("x\r\n2026-01-01 00:00:00 [error] forged"))
    assert.equal(1, #fake.logs)
    assert.is_nil(fake.logs[1].msg:find("[\r\n]"))
  end)

  it("escapes the message of a traceback, not its lines", function()
    local ok, tb = xpcall(function() error("bad\ninput", 0) end, log.traceback)
    assert.is_false(ok)
    assert.matches("^bad\\x0ainput\nstack traceback:\n", tb)
    ok, tb = xpcall(function() error(setmetatable({}, { __tostring = function() error("no") end })) end,
                    log.traceback)
    assert.is_false(ok)
    assert.matches("^%(error object is not a string%)\nstack traceback:", tb)
  end)
end)
