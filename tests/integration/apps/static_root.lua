-- StaticFileHandler over a directory a test made: /static/ serves
-- $GUST_TEST_STATIC_ROOT (settings.static_path), following symlinks out of
-- it only when $GUST_TEST_FOLLOW_SYMLINKS is "1"; /boom/(.*) raises an
-- error that quotes its capture.
local web = require "gust.web"

local Boom = web.RequestHandler:extend()
function Boom:get(what)
  error("cannot do " .. what)
end

return web.Application({
  {"/boom/(.*)", Boom},
}, {
  static_path = assert(os.getenv("GUST_TEST_STATIC_ROOT"), "GUST_TEST_STATIC_ROOT not set"),
  static_follow_symlinks = os.getenv("GUST_TEST_FOLLOW_SYMLINKS") == "1",
})
