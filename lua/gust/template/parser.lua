-- gust.template.parser: template source -> a tree of nodes, for
-- gust.template.codegen. Tornado's syntax with Lua inside the tags (the
-- language is described in gust/template.lua).

local _M = { _VERSION = "0.1.0" }

local tostring, error = tostring, error
local byte, sub, find, gsub, match = string.byte, string.sub, string.find, string.gsub,
  string.match

local WHITESPACE_MODES = { all = true, single = true, oneline = true }

-- As Tornado's filter_whitespace.
local function filter_whitespace(mode, text)
  if mode == "single" then
    text = gsub(text, "[\t ]+", " ")
    text = gsub(text, "%s*\n%s*", "\n")
  elseif mode == "oneline" then
    text = gsub(text, "%s+", " ")
  elseif mode ~= "all" then
    error("invalid whitespace mode '" .. tostring(mode) .. "'", 2)
  end
  return text
end
_M.filter_whitespace = filter_whitespace

local KEYWORDS = {}
for w in ("and break do else elseif end false for function goto if in local nil not "
          .. "or repeat return then true until while"):gmatch("%a+") do
  KEYWORDS[w] = true
end

local function newlines(s)
  local n, p = 0, find(s, "\n", 1, true)
  while p do
    n = n + 1
    p = find(s, "\n", p + 1, true)
  end
  return n
end

-- s without surrounding whitespace, and the number of lines its start is
-- below the start of s.
local function trim(s)
  local lead, body = match(s, "^(%s*)(.-)%s*$")
  return body, newlines(lead)
end

local function unquote(s)
  return match(s, '^"(.*)"$') or match(s, "^'(.*)'$") or s
end

-- The names `lhs` assigns when {% set %} is a plain `a, b = ...`, else nil.
local function set_names(code)
  local lhs, rhs = match(code, "^([%w_,%s]+)=(.*)$")
  if not lhs or byte(rhs) == 61 then return nil end -- "=="
  local names = {}
  for part in (lhs .. ","):gmatch("([^,]*),") do
    local name = match(part, "^%s*([%a_][%w_]*)%s*$")
    if not name or KEYWORDS[name] then return nil end
    names[#names + 1] = name
  end
  return names
end

local BLOCK_OPS = { ["if"] = true, ["for"] = true, ["while"] = true, block = true, apply = true }
local MISSING = {
  ["if"] = "condition", ["while"] = "condition", ["for"] = "loop clause",
  block = "name", apply = "function", set = "statement", raw = "expression",
  include = "file path", extends = "file path", autoescape = "function name (or nil)",
  whitespace = "mode",
}

-- Parses `src` into file.body. Nodes: { kind, line, file, ... }; kinds text,
-- expr, set, if/for/while/block/apply (with body and end_line), elseif,
-- else, break, continue, include, extends.
local function parse(src, file)
  local pos, line, len = 1, 1, #src
  local ws = file.whitespace
  local name = file.name

  local function fail(at, msg) error(name .. ":" .. at .. ": " .. msg, 0) end

  local function add_text(body, s, at)
    if ws ~= "all" and not find(s, "<pre>", 1, true) then s = filter_whitespace(ws, s) end
    if s ~= "" then body[#body + 1] = { kind = "text", value = s, line = at, file = file } end
  end

  local function directive(body, contents, at, in_block, loop)
    local op, rest = match(contents, "^([%w_]+)(.*)$")
    if not op then fail(at, "unknown directive '" .. contents .. "'") end
    local suffix, down = trim(rest)
    local sline = at + down
    local function need()
      if suffix == "" then fail(at, op .. " missing " .. MISSING[op]) end
    end

    if op == "end" then
      if not in_block then fail(at, "Extra {% end %} block") end
      in_block.end_line = at
      return true
    elseif op == "else" or op == "elseif" or op == "elif" then
      if not in_block then fail(at, op .. " outside if block") end
      if in_block.kind ~= "if" then
        fail(at, op .. " block cannot be attached to " .. in_block.kind .. " block")
      end
      if in_block.has_else then fail(at, op .. " after else") end
      if op == "else" then
        if suffix ~= "" then fail(at, "else takes no condition (use elseif)") end
        in_block.has_else = true
        body[#body + 1] = { kind = "else", line = at, file = file }
      else
        if suffix == "" then fail(at, op .. " missing condition") end
        body[#body + 1] = { kind = "elseif", arg = suffix, line = sline, file = file }
      end
    elseif BLOCK_OPS[op] then
      need()
      local node = { kind = op, arg = suffix, line = sline, file = file }
      if op == "block" then
        node.arg = unquote(suffix)
      elseif op == "for" then
        if match(suffix, "^[%a_][%w_]*%s*=") then
          node.numeric = true
        else
          local names, explist = match(suffix, "^(.-)%sin%s(.*)$")
          if not names or not match(names, "^[%w_,%s]+$") then
            fail(at, "for expects 'names in expression' or 'name = start, stop'")
          end
          node.names, node.explist = names, explist
        end
      end
      local inner = loop
      if op == "for" or op == "while" then
        inner = node
      elseif op == "apply" then
        inner = nil -- its body is a separate buffer: no break across it
      end
      body[#body + 1] = node
      return false, node, inner
    elseif op == "break" or op == "continue" then
      if not loop then fail(at, op .. " outside for/while loop") end
      if op == "continue" then loop.uses_continue = true end
      body[#body + 1] = { kind = op, loop = loop, line = at, file = file }
    elseif op == "set" then
      need()
      body[#body + 1] = { kind = "set", arg = suffix, names = set_names(suffix),
                          line = sline, file = file }
    elseif op == "raw" then
      need()
      body[#body + 1] = { kind = "expr", arg = suffix, raw = true, line = sline, file = file }
    elseif op == "include" or op == "extends" then
      need()
      local path = unquote(suffix)
      if path == "" then fail(at, op .. " missing file path") end
      local node = { kind = op, arg = path, line = at, file = file }
      if op == "extends" then
        if in_block then fail(at, "extends must be at the top level of a template") end
        if file.extends then fail(at, "only one extends per template") end
        file.extends = node
      end
      body[#body + 1] = node
    elseif op == "comment" then -- luacheck: ignore 542
      -- nothing
    elseif op == "autoescape" then
      need()
      if suffix == "nil" or suffix == "None" or suffix == "false" then
        file.autoescape = false
      elseif match(suffix, "^[%a_][%w_%.]*$") and not KEYWORDS[suffix] then
        file.autoescape = suffix
      else
        fail(at, "autoescape expects a function name or nil")
      end
    elseif op == "whitespace" then
      need()
      if not WHITESPACE_MODES[suffix] then
        fail(at, "invalid whitespace mode '" .. suffix .. "'")
      end
      ws = suffix
    else
      fail(at, "unknown directive '" .. op .. "'")
    end
    return false
  end

  local parse_body

  -- Reads nodes into a new body until EOF (in_block nil) or the
  -- {% end %} of in_block.
  parse_body = function(in_block, loop)
    local body = {}
    while true do
      -- The next "{{", "{%" or "{#"; of more than two "{" in a row, the
      -- innermost pair counts (as Tornado, for LaTeX and the like).
      local curly = pos
      while true do
        curly = find(src, "{", curly, true)
        if not curly or curly == len then
          if pos <= len then
            local s = sub(src, pos)
            add_text(body, s, line)
            line = line + newlines(s)
            pos = len + 1
          end
          if in_block then
            fail(in_block.line, "Missing {% end %} block for " .. in_block.kind)
          end
          return body
        end
        local c = byte(src, curly + 1)
        if c ~= 123 and c ~= 37 and c ~= 35 then -- { % #
          curly = curly + 1
        elseif c == 123 and byte(src, curly + 2) == 123 then
          curly = curly + 1
        else
          break
        end
      end
      if curly > pos then
        local s = sub(src, pos, curly - 1)
        add_text(body, s, line)
        line = line + newlines(s)
      end
      local brace = sub(src, curly, curly + 1)
      local at = line
      pos = curly + 2
      if byte(src, pos) == 33 then -- "!": the braces are text
        pos = pos + 1
        add_text(body, brace, at)
      elseif brace == "{#" then
        local e = find(src, "#}", pos, true)
        if not e then fail(at, "Missing end comment #}") end
        line = line + newlines(sub(src, pos, e - 1))
        pos = e + 2
      else
        local closer = brace == "{{" and "}}" or "%}"
        local e = find(src, closer, pos, true)
        if not e then
          fail(at, brace == "{{" and "Missing end expression }}" or "Missing end block %}")
        end
        local raw = sub(src, pos, e - 1)
        line = line + newlines(raw)
        pos = e + 2
        local contents, down = trim(raw)
        if brace == "{{" then
          if contents == "" then fail(at, "Empty expression") end
          body[#body + 1] = { kind = "expr", arg = contents, line = at + down, file = file }
        else
          if contents == "" then fail(at, "Empty block tag ({% %})") end
          local done, node, inner = directive(body, contents, at + down, in_block, loop)
          if done then return body end
          if node then node.body = parse_body(node, inner) end
        end
      end
    end
  end

  file.body = parse_body(nil, nil)
  return file
end


_M.parse = parse
_M.newlines = newlines
_M.KEYWORDS = KEYWORDS
_M.WHITESPACE_MODES = WHITESPACE_MODES

return _M
