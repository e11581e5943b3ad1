-- Argo CD health of steward.dev/ControlOwnership (SPEC §2).
local hs = {status = "Progressing", message = "Waiting for the controller"}

local function condition(obj, t)
  if obj.status == nil or obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then return c end
  end
  return nil
end

if obj.status == nil or obj.status.observedGeneration == nil then return hs end
if obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "Reconciling the latest spec"
  return hs
end
local reconciling = condition(obj, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = reconciling.message
  return hs
end
local ready = condition(obj, "Ready")
local stalled = condition(obj, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (ready and ready.message) or stalled.message
  return hs
end
if ready == nil then return hs end
if ready.status ~= "True" then
  hs.message = ready.message
  return hs
end
for _, t in ipairs({"ReviewOverdue", "Drifted"}) do
  local c = condition(obj, t)
  if c ~= nil and c.status == "True" then
    hs.status = "Degraded"
    hs.message = c.message
    return hs
  end
end
hs.status = "Healthy"
hs.message = ready.message
-- Still healthy, but say what is coming.
local soon = condition(obj, "ReviewDueSoon")
if soon ~= nil and soon.status == "True" then hs.message = soon.message end
return hs
