-- gust.web.render: RequestHandler's templates -- render(), render_string()
-- and what a template sees -- over gust.template, which is loaded on the
-- first render. gust.web.handler mixes `methods` into RequestHandler.

local _M = { _VERSION = "0.1.0" }

local tostring, error, pairs, pcall, require = tostring, error, pairs, pcall, require

local methods = {}
_M.methods = methods

-- One loader per template_path, shared by the handlers of every app.
local template_loaders = {}

local function template_module()
  local ok, template = pcall(require, "gust.template")
  if not ok then
    error("render() needs the gust.template module, which could not be loaded: "
          .. tostring(template), 3)
  end
  return template
end

function methods:create_template_loader(template_path)
  local template = template_module()
  local settings = self.settings
  return template.Loader(template_path, {
    autoescape = settings.autoescape,
    whitespace = settings.template_whitespace,
  })
end

-- What every template sees besides the caller's vars. The functions are
-- made per render, never on the plain request path.
function methods:get_template_namespace()
  return {
    handler = self,
    request = self.request,
    current_user = self.current_user,
    settings = self.settings,
    static_url = function(path) return self:static_url(path) end,
    xsrf_form_html = function() return self:xsrf_form_html() end,
    reverse_url = function(name, ...) return self:reverse_url(name, ...) end,
  }
end

function methods:render_string(template_name, vars)
  template_module()
  local path = self.settings.template_path or "."
  local loader = template_loaders[path]
  if loader == nil then
    loader = self:create_template_loader(path)
    template_loaders[path] = loader
  elseif self.settings.compiled_template_cache == false and loader.reset then
    loader:reset()
  end
  local t = loader:load(template_name)
  local ns = self:get_template_namespace()
  if vars then for k, v in pairs(vars) do ns[k] = v end end
  return t:generate(ns)
end

function methods:render(template_name, vars)
  if self._finished then error("Cannot render() after finish()", 2) end
  return self:finish(self:render_string(template_name, vars))
end

return _M
