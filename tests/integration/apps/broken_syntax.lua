-- Deliberately broken: a syntax error on line 4.
local core = require "gust.core"
return function(req)
  req:finish(200, nil, nil, "x" ..)
end
