-- Argo CD health of steward.dev/PolicyException: Active and Expired are
-- Healthy, Pending is Suspended, Rejected or Stalled is Degraded.
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
if ready == nil then return hs end
hs.message = ready.message
local phase = obj.status.phase
if phase == "Active" and ready.status == "True" then
  hs.status = "Healthy"
elseif phase == "Pending" and ready.status == "True" then
  hs.status = "Suspended"
elseif phase == "Expired" and ready.status == "True" then
  -- Expiry is the designed end, not a failure; the message asks for the
  -- object to be removed from Git.
  hs.status = "Healthy"
elseif phase == "Rejected" then
  hs.status = "Degraded"
else
  local stalled = condition(obj, "Stalled")
  if stalled ~= nil and stalled.status == "True" then hs.status = "Degraded" end
end
return hs
