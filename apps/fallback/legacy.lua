-- A "legacy" WSAPI application, written the way Kepler-era apps were: a
-- module with a run(wsapi_env) entry point, no gust anywhere. The same file
-- runs under any WSAPI connector (wsapi.cgi, wsapi.fcgi, Xavante); in this
-- directory, app.lua serves it from gust (see there).
--
--   GET  /                  an index page
--   GET  /guestbook         the entries and a form
--   POST /guestbook         adds an entry (urlencoded form, read with
--                           wsapi_env.input:read) and redirects back
--   GET  /env               the CGI variables it was given, as text/plain
--   GET  /count?n=N         N lines from a coroutine.wrap iterator (a
--                           streamed body)
local _M = {}

local concat, insert = table.concat, table.insert

local entries = { { name = "gust", message = "first!" } }

local function unescape(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function html_escape(s)
  return (s:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                              ['"'] = "&quot;", ["'"] = "&#39;" }))
end

local function parse_form(s)
  local out = {}
  for pair in (s or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    out[unescape(k)] = unescape(v)
  end
  return out
end

local function page(status, title, body)
  local html = "<!doctype html><title>" .. title .. "</title><h1>" .. title .. "</h1>" .. body
  return status, { ["Content-Type"] = "text/html; charset=utf-8" }, { html }
end

local function guestbook_get(env)
  local items = {}
  for _, e in ipairs(entries) do
    insert(items, "<li><b>" .. html_escape(e.name) .. "</b>: " .. html_escape(e.message) .. "</li>")
  end
  return page(200, "Guestbook", "<ul>" .. concat(items) .. "</ul>"
    .. '<form method="post" action="' .. env.SCRIPT_NAME .. '/guestbook">'
    .. '<input name="name"> <input name="message"> <button>Sign</button></form>')
end

local function guestbook_post(env)
  if not env.CONTENT_TYPE:find("application/x-www-form-urlencoded", 1, true) then
    return page(415, "Unsupported Media Type", "<p>Send a urlencoded form.</p>")
  end
  local form = parse_form(env.input:read(tonumber(env.CONTENT_LENGTH) or 0))
  if (form.name or "") == "" or (form.message or "") == "" then
    return page(400, "Bad Request", "<p>name and message are required.</p>")
  end
  insert(entries, { name = form.name, message = form.message })
  return 303, { Location = env.SCRIPT_NAME .. "/guestbook", ["Content-Type"] = "text/plain" },
         { "signed" }
end

local function env_dump(env)
  local keys = { "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
                 "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
                 "CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_HOST", "HTTP_USER_AGENT" }
  local lines = {}
  for _, k in ipairs(keys) do insert(lines, k .. "=" .. env[k]) end
  return 200, { ["Content-Type"] = "text/plain" }, { concat(lines, "\n") .. "\n" }
end

local function count(env)
  local n = tonumber(env.QUERY_STRING:match("n=(%d+)")) or 10
  return 200, { ["Content-Type"] = "text/plain" }, coroutine.wrap(function()
    for i = 1, n do coroutine.yield("line " .. i .. "\n") end
  end)
end

function _M.run(env)
  local path, method = env.PATH_INFO, env.REQUEST_METHOD
  if path == "/" then
    return page(200, "Legacy app", '<p>Served by a WSAPI application behind gust.</p>'
      .. '<ul><li><a href="guestbook">guestbook</a></li><li><a href="env">env</a></li>'
      .. '<li><a href="count?n=5">count</a></li></ul>')
  elseif path == "/guestbook" and method == "POST" then
    return guestbook_post(env)
  elseif path == "/guestbook" then
    return guestbook_get(env)
  elseif path == "/env" then
    return env_dump(env)
  elseif path == "/count" then
    return count(env)
  end
  return page("404 Not Found", "Not Found", "<p>No " .. html_escape(path) .. " here.</p>")
end

return _M
