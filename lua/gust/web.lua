-- gust.web: Tornado's web.py over the gust.core request handle --
-- Application, RequestHandler, HTTPError and the built-in handlers
-- (DESIGN §4.1). The C core owns the wire: parsing, Content-Length or
-- chunked encoding, Server/Date/default Content-Type, the ETag of small GET
-- bodies and HEAD. The framework is in gust/web/, one concern per file:
--
--   errors.lua       HTTPError, MissingArgumentError, Finish, reason phrases
--   request.lua      the request (self.request): fields built on first read,
--                    on_close listeners, the close hook
--   handler.lua      RequestHandler: life cycle, output, errors, arguments
--   security.lua     cookies, signed cookies, XSRF, authenticated
--   render.lua       templates: render, render_string
--   handlers.lua     ErrorHandler, RedirectHandler, FallbackHandler,
--                    MetricsHandler
--   static.lua       StaticFileHandler
--   proxy.lua        ProxyHandler (loaded on first use: it needs the client)
--   routing.lua      route patterns, matching, reverse_url
--   application.lua  Application
--
-- This module gathers what an application uses under one name.

local rawset, require, setmetatable = rawset, require, setmetatable

local errors = require "gust.web.errors"
local request = require "gust.web.request"
local handler = require "gust.web.handler"
local security = require "gust.web.security"
local handlers = require "gust.web.handlers"
local static = require "gust.web.static"
local application = require "gust.web.application"

local _M = {
  _VERSION = "0.1.0",
  responses = errors.responses,
  HTTPError = errors.HTTPError,
  MissingArgumentError = errors.MissingArgumentError,
  Finish = errors.Finish,
  is_http_error = errors.is_http_error,
  HTTPServerRequest = request.HTTPServerRequest,
  RequestHandler = handler.RequestHandler,
  asynchronous = handler.asynchronous,
  authenticated = security.authenticated,
  ErrorHandler = handlers.ErrorHandler,
  RedirectHandler = handlers.RedirectHandler,
  FallbackHandler = handlers.FallbackHandler,
  MetricsHandler = handlers.MetricsHandler,
  StaticFileHandler = static.StaticFileHandler,
  Application = application.Application,
  url = application.url,
}

-- web.ProxyHandler is loaded the first time it is read.
return setmetatable(_M, {
  __index = function(t, k)
    if k == "ProxyHandler" then
      local cls = require("gust.web.proxy").ProxyHandler
      rawset(t, k, cls)
      return cls
    end
  end,
})
