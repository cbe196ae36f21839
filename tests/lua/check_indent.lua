-- Indentation check for the Lua sources (STYLE: 2 spaces), which luacheck
-- does not do. tests/run-all runs it on lua/ and apps/:
--
--   luajit tests/lua/check_indent.lua FILE...
--
-- A file fails when a line of code is indented with a tab, or when the
-- first line of a block body (after function, then, do, else or repeat) is
-- not indented exactly 2 spaces deeper than the line that opened the
-- block, which is how a 4-space file shows itself. Lines inside long
-- strings and long comments are text, not code, and are not looked at.
-- Prints one line per problem, then "indent: N passed, N failed" (files).

local find, match, sub = string.find, string.match, string.sub
local open = io.open

local OPENERS = { ["function"] = true, ["then"] = true, ["do"] = true,
                  ["else"] = true, ["repeat"] = true }
local CLOSERS = { ["end"] = true, ["else"] = true, ["elseif"] = true, ["until"] = true }

-- Splits src into lines and tells for each whether it starts inside a long
-- bracket (string or comment), and which lines end with a block opener
-- (the last keyword of the line opens a block left open on that line).
-- For a "then" or "do" the block's indentation is that of the line with
-- its "if", "elseif", "while" or "for" (a condition may span lines).
local function scan(src)
  local lines, in_long, opens = {}, {}, {}
  for l in (src .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  local ln, i, n = 1, 1, #src
  local depth = {}     -- per line: blocks opened on it and still open at its end
  local stack = {}     -- open blocks: the line whose indentation they take
  local pending = {}   -- lines of "if"/"while"/"for" waiting for then/do
  local function newline(inside)
    ln = ln + 1
    in_long[ln] = inside
  end
  while i <= n do
    local c = sub(src, i, i)
    if c == "\n" then
      newline(false)
      i = i + 1
    elseif find(c, "%s") then
      i = i + 1
    elseif sub(src, i, i + 1) == "--" then
      local eq = match(src, "^%-%-%[(=*)%[", i)
      local stop
      if eq then
        local _, e = find(src, "]" .. eq .. "]", i, true)
        stop = e or n
      else
        stop = (find(src, "\n", i, true) or n + 1) - 1
      end
      for _ in sub(src, i, stop):gmatch("\n") do newline(true) end
      i = stop + 1
    elseif match(src, "^%[=*%[", i) then
      local eq = match(src, "^%[(=*)%[", i)
      local _, e = find(src, "]" .. eq .. "]", i, true)
      e = e or n
      for _ in sub(src, i, e):gmatch("\n") do newline(true) end
      i = e + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = sub(src, j, j)
        if d == "\\" then
          if sub(src, j + 1, j + 1) == "\n" then newline(true) end
          j = j + 2
        elseif d == c or d == "\n" then
          break
        else
          j = j + 1
        end
      end
      i = j + 1
    elseif find(c, "[%a_]") then
      local w = match(src, "^[%w_]+", i)
      if w == "if" or w == "elseif" or w == "while" or w == "for" then
        pending[#pending + 1] = { w, ln }
      end
      if CLOSERS[w] and w ~= "else" then
        stack[#stack] = nil
      end
      if OPENERS[w] then
        local at = ln
        local p = pending[#pending]
        if (w == "then" and p and (p[1] == "if" or p[1] == "elseif"))
           or (w == "do" and p and (p[1] == "while" or p[1] == "for")) then
          at = p[2]
          pending[#pending] = nil
        end
        if w == "else" then stack[#stack] = nil end
        stack[#stack + 1] = { at = at, line = ln }
      end
      i = i + #w
    else
      i = i + 1
    end
    -- Blocks opened on this line that are still open when it ends.
    if sub(src, i, i) == "\n" or i > n then
      local top = stack[#stack]
      if top and top.line == ln and not depth[ln] then
        depth[ln] = true
        opens[ln] = top.at
      end
    end
  end
  return lines, in_long, opens
end

local function indent(l)
  return #match(l, "^[ \t]*")
end

local function check(path)
  local f, err = open(path, "rb")
  if not f then return { path .. ": " .. tostring(err) } end
  local src = f:read("*a")
  f:close()
  local lines, in_long, opens = scan(src)
  local problems = {}
  for ln = 1, #lines do
    local l = lines[ln]
    if not in_long[ln] and find(l, "%S") then
      if find(match(l, "^[ \t]*"), "\t", 1, true) then
        problems[#problems + 1] = string.format("%s:%d: indented with a tab", path, ln)
      end
      local at = opens[ln]
      if at then
        -- The body's first line of code.
        local k = ln + 1
        while lines[k] and not find(lines[k], "%S") do k = k + 1 end
        local body = lines[k]
        if body and not in_long[k] then
          local word = match(body, "^%s*([%a_]+)")
          local want = indent(lines[at]) + 2
          if not CLOSERS[word] and indent(body) ~= want then
            problems[#problems + 1] = string.format(
              "%s:%d: indented %d spaces, expected %d (2-space indentation)",
              path, k, indent(body), want)
          end
        end
      end
    end
  end
  return problems
end

local passed, failed = 0, 0
for i = 1, #arg do
  local problems = check(arg[i])
  if #problems == 0 then
    passed = passed + 1
  else
    failed = failed + 1
    for j = 1, #problems do print(problems[j]) end
  end
end
print(string.format("indent: %d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
