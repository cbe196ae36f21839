-- StaticFileHandler over a directory a test made: /static/ serves
-- $GUST_TEST_STATIC_ROOT (settings.static_path), following symlinks out of
-- it only when $GUST_TEST_FOLLOW_SYMLINKS is "1".
local web = require "gust.web"

return web.Application({}, {
  static_path = assert(os.getenv("GUST_TEST_STATIC_ROOT"), "GUST_TEST_STATIC_ROOT not set"),
  static_follow_symlinks = os.getenv("GUST_TEST_FOLLOW_SYMLINKS") == "1",
})
